"""Scale-out: a wave of nine VMs migrated from the sim to KVM (libvirtd) by ansible-playbook over three
conversion workers, real SSH hosts in their own network namespaces (tests/ansible/workers.py). One worker
is killed (every process of it, SIGKILL) while it migrates its second VM; a second run of the same playbook
resumes that migration from the worker's journal, moves the rest of its share, and reports no change on the
other workers. Every VM ends on the target exactly once, every disk verified."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit

from .conftest import Playbook, PlaybookRun
from .workers import SshWorker

pytestmark = pytest.mark.slow

VMS = 9
DISK_MIB = 64


def _needs() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("ip", "/usr/sbin/sshd", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing (scripts/setup.d/70-ansible.packages)")
    pytest.importorskip("libvirt")
    if not Path("/run/libvirt/libvirt-sock").exists():
        pytest.skip("libvirtd is not running (scripts/setup.d/20-kvm.sh starts it)")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[SshWorker]]:
    _needs()
    key = tmp_path / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    tag = uuid.uuid4().hex[:5]
    made = [SshWorker(f"hvw{tag}{i}", tmp_path / "workers", key) for i in (1, 2, 3)]
    try:
        for worker in made:
            worker.start()
        yield made
    finally:
        for worker in made:
            worker.stop()


@pytest.fixture
def wave(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """Nine stopped VMs on a sim with a shared state folder, each with a disk of random data; removed from
    KVM afterwards."""
    url = f"sim://wave?state_dir={tmp_path}/sim&local_files=true"
    names = [f"wave-{uuid.uuid4().hex[:6]}-{i}" for i in range(1, VMS + 1)]
    data = tmp_path / "data.raw"
    with hvkit.connect(url) as hv:
        for name in names:
            vm = hv.vms.create(
                hvkit.VMSpec(
                    name=name,
                    cpus=1,
                    memory_mib=256,
                    disks=[hvkit.DiskSpec(size_gib=DISK_MIB / 1024)],
                    nics=[hvkit.NicSpec(network="default")],
                )
            )
            data.write_bytes(os.urandom(DISK_MIB << 20))
            hv.volumes.upload(vm.disks[0].volume, data)
    data.unlink()
    try:
        yield url, names
    finally:
        with hvkit.connect("kvm:///system") as kvm:
            for vm in kvm.vms.list():
                if vm.name in names:
                    kvm.vms.delete(vm, force=True)


def write_inventory(path: Path, workers: list[SshWorker]) -> str:
    known = path.parent / "known_hosts"
    known.write_text("".join(w.known_hosts_line() for w in workers))
    hosts = {w.name: w.inventory_vars(known) for w in workers}
    path.write_text(json.dumps({"workers": {"hosts": hosts}}))
    return str(path)


def journal(root: Path, worker: str, vm: str) -> Path:
    return root / worker / vm / "journal.jsonl"


def records(path: Path) -> list[dict[str, object]]:
    """The journal's whole records (a record the kill cut short is no record)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def statuses(path: Path) -> list[str]:
    return [str(r["status"]) for r in records(path) if r.get("kind") == "status"]


def test_wave_over_three_workers_survives_a_dead_worker(
    workers: list[SshWorker], wave: tuple[str, list[str]], playbook: Playbook, tmp_path: Path
) -> None:
    source, names = wave
    root = tmp_path / "journals"
    inventory = write_inventory(tmp_path / "workers.json", workers)
    extra = {"wave": names, "source": {"url": source}, "target": {"url": "kvm:///system"}, "journal_root": str(root)}
    env = {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no", "ANSIBLE_PIPELINING": "true", "ANSIBLE_TIMEOUT": "30"}
    ordered = sorted(w.name for w in workers)
    victim = workers[1]
    share = names[ordered.index(victim.name) :: len(workers)]  # what the playbook gives the victim

    # 1. the wave starts on three workers (forks=3: all at once); the victim dies during its second VM
    started = time.monotonic()
    proc = playbook.start("wave.yml", extra, inventory=inventory, args=("--forks", "3"), env=env)
    second = journal(root, victim.name, share[1])
    while not second.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() - started < 600, "the victim never began its second VM"
        time.sleep(0.005)
    killed = victim.kill()
    output = proc.communicate(timeout=900)[0]
    first = PlaybookRun(proc.returncode, output)
    assert killed and first.rc != 0, output
    assert first.recap[victim.name].get("unreachable", 0) + first.recap[victim.name].get("failed", 0) == 1, output
    for other in workers:
        if other is not victim:
            assert first.recap[other.name]["failed"] == 0 and first.recap[other.name]["unreachable"] == 0, output
    assert statuses(journal(root, victim.name, share[0]))[-1] == "completed"
    at_kill = records(second)
    # what the re-run must do with the second VM: the kill came before the journal had its plan record
    # (migrate afresh), during the migration (resume), or after it finished (nothing)
    if not any(r.get("kind") == "plan" for r in at_kill):
        expected = "migrate"
    elif statuses(second)[-1] != "completed":
        expected = "resume"
    else:
        expected = "none"
    assert not journal(root, victim.name, share[2]).exists()

    # 2. the worker comes back; the same playbook finishes the wave
    victim.start()
    rerun = playbook.run("wave.yml", extra, inventory=inventory, args=("--forks", "3"), env=env).check()
    for other in workers:
        changed = rerun.recap[other.name]["changed"]
        assert changed == (1 if other is victim else 0), rerun.output
    assert f"['{share[1]}', '{expected}']" in rerun.output, rerun.output
    if expected == "resume":
        assert "resumed" in statuses(second), rerun.output
    assert f"['{share[0]}', 'none']" in rerun.output

    # 3. every VM is on the target once, every journal completed with both checksums of every disk equal
    with hvkit.connect("kvm:///system") as kvm:
        on_target = [vm.name for vm in kvm.vms.list() if vm.name in names]
    assert sorted(on_target) == sorted(names)
    for i, name in enumerate(names):
        path = journal(root, ordered[i % len(workers)], name)
        assert statuses(path)[-1] == "completed", path
