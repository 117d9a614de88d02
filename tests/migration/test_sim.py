"""Plan, run, verify, fail, resume and roll back: sim -> sim (two named sim hypervisors)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hvkit
from hvkit import migration
from hvkit.errors import AlreadyExists, BackendError, InvalidSpec, InvalidState
from hvkit.hypervisor import Hypervisor
from hvkit.migration import ChecksumMismatch, PlanProblems
from hvkit.migration._run import HOOKS

from .conftest import MIB, env_without_crash, forget, inventory, make_source, sim_url, volume_content

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_hooks() -> None:
    HOOKS.clear()


def test_plan_maps_everything_and_changes_nothing(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    source = make_source(src, tmp_path)
    before = inventory(src), inventory(dst)
    plan = migration.plan(src, "web-1", dst, network_map={"lan": "default"}, storage_map={"fast": "default"})
    assert plan.ok, plan.problems
    assert (plan.cpus, plan.memory_mib) == (2, 1024)
    assert [d.target_pool for d in plan.disks] == ["default", "default"]
    assert [d.target_format for d in plan.disks] == [hvkit.DiskFormat.QCOW2, hvkit.DiskFormat.RAW]
    assert [n.network for n in plan.nics] == ["default", "default"]
    assert [n.mac for n in plan.nics] == [n.mac for n in source.vm.nics]  # MACs kept by default
    assert 0 < plan.bytes_to_move < 24 * MIB
    text = str(plan)
    for needle in ("Steps:", "bytes to move", "Problems: none", "disk disk0", "'lan' -> 'default'", "MAC kept"):
        assert needle in text
    assert (inventory(src), inventory(dst)) == before


def test_plan_lists_blocking_problems(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    make_source(src, tmp_path, running=True)
    dst.vms.create(hvkit.VMSpec(name="web-1"))
    dst.volumes.create("fast", "other-disk0", 0.01)
    src.snapshots.create("web-1", "before-upgrade")
    plan = migration.plan(src, "web-1", dst, network_map={"lan": "nowhere"}, storage_map={"fast": "missing"})
    text = "\n".join(plan.problems)
    assert "is running" in text and "power_off=True" in text
    assert "exists already on the target" in text
    assert "'nowhere', which the target does not have" in text
    assert "'missing', which the target does not have" in text
    assert "snapshot(s) (before-upgrade) that would be lost" in text
    before = inventory(dst)
    with pytest.raises(PlanProblems) as err:
        plan.run()
    assert "nothing was changed" in str(err.value)
    assert inventory(dst) == before
    # the same VM under another name, powered off by hvkit, snapshots given up: no problems left
    plan = migration.plan(src, "web-1", dst, name="other", power_off=True, allow_snapshot_loss=True)
    assert plan.ok, plan.problems
    assert any("snapshot" in w for w in plan.warnings)
    assert any(
        "volume named 'other-disk0'" in p
        for p in migration.plan(
            src, "web-1", dst, name="other", storage_map={"default": "fast"}, power_off=True, allow_snapshot_loss=True
        ).problems
    )


def test_bad_input_is_refused_before_anything(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    make_source(src, tmp_path)
    with pytest.raises(InvalidSpec):
        migration.plan(src, "web-1", dst, network_map={"lan": ""})
    with pytest.raises(InvalidSpec):
        migration.plan(src, "web-1", dst, disk_format="floppy")
    with pytest.raises(InvalidSpec):
        migration.plan(src, "web-1", dst, power_off=True, snapshot=True)
    with pytest.raises(InvalidSpec):
        migration.plan(src, "web-1", src)
    with pytest.raises(hvkit.errors.NotFound):
        migration.plan(src, "no-such-vm", dst)
    plan = migration.plan(src, "web-1", dst)
    with pytest.raises(InvalidSpec):
        plan.run(on_error="ignore")


def test_run_moves_every_disk_verified(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path) -> None:
    src, dst = pair
    source = make_source(src, tmp_path)
    events: list[migration.Progress] = []
    plan = migration.plan(src, "web-1", dst, storage_map={"fast": "fast"}, disk_format="qcow2")
    result = plan.run(progress=events.append, start=True)
    assert result.started and result.vm.power_state is hvkit.PowerState.RUNNING
    assert result.verified
    assert [d.source_checksum for d in result.disks] == source.checksums
    assert [d.target_checksum for d in result.disks] == source.checksums
    for disk, content in zip(result.vm.disks, source.contents, strict=True):
        assert disk.format is hvkit.DiskFormat.QCOW2
        assert volume_content(dst, disk.volume or "", tmp_path)[: len(content)] == content
    assert [n.mac for n in result.vm.nics] == [n.mac for n in source.vm.nics]
    assert (result.vm.cpus, result.vm.memory_mib) == (2, 1024)
    # sparse: bytes moved are the allocated bytes, not the disk sizes
    for d in result.disks:
        assert d.bytes_moved <= 1.1 * d.bytes_allocated + 64 * 1024
    phases = {(e.disk, e.phase) for e in events}
    want = {("disk0", "export"), ("disk0", "checksum"), ("disk0", "import"), ("disk0", "verify"), ("", "start")}
    assert want <= phases
    # the source is as it was; the journal says completed; staging files are gone
    assert src.vms.get("web-1").power_state is hvkit.PowerState.STOPPED
    journal = migration.Journal.open(result.journal)
    assert journal.current_status == "completed"
    assert not (Path(result.journal) / "staging").exists()
    assert "verified" in str(result)


@pytest.mark.parametrize("copies", [False, True], ids=["attached as imported", "copied at create"])
def test_imports_are_verified_while_the_vm_is_created(
    pair: tuple[Hypervisor, Hypervisor],
    tmp_path: Path,
    journal_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    copies: bool,
) -> None:
    """The imported volumes are read back while the VM is created; when create_vm copies them (Proxmox
    import-from), the VM's own disks are verified once it exists."""
    import threading

    src, dst = pair
    source = make_source(src, tmp_path, disks=((4, "default", "qcow2"),))
    monkeypatch.setattr(type(dst.backend), "create_copies_volumes", copies)
    creating, verifying = threading.Event(), threading.Event()
    HOOKS["vm.create:begin"] = creating.set
    HOOKS["disk0.verify:begin"] = verifying.set

    def wait_until_verifying() -> None:
        # the VM is made only once its disk is being read back, or, when the target copies, never while it is
        if not copies:
            verifying.wait(10)

    HOOKS["vm.create:acted"] = wait_until_verifying
    result = migration.plan(src, "web-1", dst).run()
    assert result.verified and [d.target_checksum for d in result.disks] == source.checksums
    steps = [(r["step"], r["state"]) for r in migration.Journal.open(result.journal).steps()]
    if copies:
        assert steps.index(("vm.create", "done")) < steps.index(("disk0.verify", "begin"))
    else:
        assert steps.index(("disk0.verify", "begin")) < steps.index(("vm.create", "done"))
        assert creating.is_set() and verifying.is_set()


def test_the_checksum_algorithm_is_the_callers_choice(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path
) -> None:
    from hvkit.migration._verify import V2, checksum_bytes

    src, dst = pair
    source = make_source(src, tmp_path, disks=((4, "default", "qcow2"),))
    plan = migration.plan(src, "web-1", dst)
    with pytest.raises(InvalidSpec, match="hvkit-disk-v3"):
        plan.run(checksum="md5")
    assert inventory(dst) == ([], [])
    result = plan.run(checksum=V2)
    assert [d.target_checksum for d in result.disks] == [checksum_bytes(c, V2) for c in source.contents]
    assert migration.Journal.open(result.journal).plan["checksum"] == V2


def test_generic_stream_path_without_local_files(names: tuple[str, str], tmp_path: Path, journal_root: Path) -> None:
    """Volume download/upload streams (no local files): the default disk export/import still works."""
    with hvkit.connect(sim_url(names[0], local=False)) as src, hvkit.connect(sim_url(names[1], local=False)) as dst:
        source = make_source(src, tmp_path, disks=((8, "default", "qcow2"),))
        result = migration.plan(src, "web-1", dst).run()
        assert result.verified and [d.target_checksum for d in result.disks] == source.checksums
        assert volume_content(dst, result.vm.disks[0].volume or "", tmp_path) == source.contents[0]


def test_sim_volumes_are_read_and_written_in_place(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    """Sim volumes are local files: export is the file itself, import writes into the new volume's file."""
    src, dst = pair
    source = make_source(src, tmp_path, disks=((8, "default", "qcow2"),))
    vol = src.volumes.get(source.vm.disks[0].volume or "")
    assert src.backend.local_path(vol) == vol.path
    image = src.backend.export_disk(vol, str(tmp_path / "w"), lambda a, b: None)
    assert (image.path, image.temporary, image.bytes_moved) == (vol.path, False, 0)
    result = migration.plan(src, "web-1", dst).run(journal_dir=tmp_path / "j")
    assert result.verified and [d.target_checksum for d in result.disks] == source.checksums
    assert result.disks[0].bytes_moved == result.disks[0].bytes_allocated  # data only: written in place
    with hvkit.connect(sim_url(src.url.split("//")[1].split("?")[0], local=False)) as streams:
        assert streams.backend.local_path(vol) is None


def test_checksum_mismatch_stops_and_leaves_nothing(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path
) -> None:
    src, dst = pair
    source = make_source(src, tmp_path)
    before = inventory(dst)

    def corrupt() -> None:  # flip one byte of what the target holds, after the import
        vol = next(v for v in dst.volumes.list("default") if v.name.startswith("web-1-disk0"))
        fmt = (vol.format or hvkit.DiskFormat.RAW).value
        raw = tmp_path / "c.raw"
        subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", vol.path or "", str(raw)], check=True)
        data = bytearray(raw.read_bytes())
        data[0] ^= 0xFF
        raw.write_bytes(bytes(data))
        subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", fmt, str(raw), vol.path or ""], check=True)

    HOOKS["disk0.import:acted"] = corrupt
    plan = migration.plan(src, "web-1", dst, storage_map={"fast": "default"})
    with pytest.raises(ChecksumMismatch) as err:
        plan.run(start=True, parallel=1)
    assert "disk0" in str(err.value) and source.checksums[0] in str(err.value)
    assert "not started" in str(err.value)
    assert inventory(dst) == before  # no VM was created, the imported volumes are gone
    assert src.vms.get("web-1").power_state is hvkit.PowerState.STOPPED


STEPS = [
    "source.prepare",
    "disk0.export",
    "disk0.checksum",
    "disk0.import",
    "disk0.verify",
    "disk1.import",
    "vm.create",
    "vm.start",
]
POINTS = [f"{s}:{p}" for s in STEPS for p in ("begin", "acted", "done")]


@pytest.mark.parametrize("point", POINTS)
def test_failure_at_each_step_rolls_back(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path, point: str
) -> None:
    """An error anywhere: what was made on the target goes, the source is put back (started again)."""
    src, dst = pair
    source = make_source(src, tmp_path, running=True)
    before = inventory(dst)

    def fail() -> None:
        raise BackendError(f"injected failure at {point}")

    HOOKS[point] = fail
    plan = migration.plan(src, "web-1", dst, power_off=True)
    with pytest.raises(BackendError, match="injected") as err:
        plan.run(start=True)
    assert any("rolled back" in n for n in getattr(err.value, "__notes__", []))
    assert inventory(dst) == before
    assert src.vms.get("web-1").power_state is hvkit.PowerState.RUNNING
    assert [checksum_of(src, d.volume or "", tmp_path) for d in source.vm.disks] == source.checksums
    journal = migration.Journal.open(next(journal_root.iterdir()))
    assert journal.current_status == "rolled-back"
    assert not journal.staging.exists() or not any(journal.staging.iterdir())


def checksum_of(hv: Hypervisor, volume: str, tmp: Path) -> str:
    from hvkit.migration._verify import checksum_bytes

    return checksum_bytes(volume_content(hv, volume, tmp))


def test_keep_on_error_then_resume(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path) -> None:
    src, dst = pair
    source = make_source(src, tmp_path)
    dst.backend.faults.fail("create_vm")  # type: ignore[attr-defined]
    plan = migration.plan(src, "web-1", dst)
    with pytest.raises(BackendError) as err:
        plan.run(on_error="keep")
    assert any("resume() or rollback()" in n for n in err.value.__notes__)
    jdir = next(journal_root.iterdir())
    assert migration.Journal.open(jdir).current_status == "failed"
    result = migration.resume(jdir, src, dst)
    assert result.verified and [d.target_checksum for d in result.disks] == source.checksums
    with pytest.raises(InvalidState):
        migration.resume(jdir, src, dst)
    with pytest.raises(InvalidState):
        migration.rollback(jdir, src, dst)


@pytest.mark.parametrize("journaled", ["v1 recorded", "no algorithm recorded"])
def test_resume_of_a_v1_journal_verifies_with_v1(
    pair: tuple[Hypervisor, Hypervisor],
    tmp_path: Path,
    journal_root: Path,
    journaled: str,
) -> None:
    """A migration journaled with hvkit-disk-v1 (as earlier releases did) is resumed comparing v1 with v1."""
    from hvkit.migration._verify import V1, checksum_bytes

    src, dst = pair
    source = make_source(src, tmp_path)
    dst.backend.faults.fail("create_vm")  # type: ignore[attr-defined]
    with pytest.raises(BackendError):
        migration.plan(src, "web-1", dst).run(on_error="keep", checksum=V1)
    jdir = next(journal_root.iterdir())
    if journaled == "no algorithm recorded":  # journals written before the algorithm was recorded
        lines = (jdir / "journal.jsonl").read_text().splitlines()
        first = json.loads(lines[0])
        assert first["plan"].pop("checksum") == V1
        (jdir / "journal.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    v1 = [checksum_bytes(c, V1) for c in source.contents]
    assert [migration.Journal.open(jdir).state(f"disk{i}.checksum")[1]["value"] for i in range(2)] == v1
    result = migration.resume(jdir, src, dst)
    assert result.verified
    assert [d.source_checksum for d in result.disks] == [d.target_checksum for d in result.disks] == v1


def test_a_journal_with_an_unknown_algorithm_is_refused(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path
) -> None:
    src, dst = pair
    make_source(src, tmp_path)
    dst.backend.faults.fail("create_vm")  # type: ignore[attr-defined]
    with pytest.raises(BackendError):
        migration.plan(src, "web-1", dst).run(on_error="keep")
    jdir = next(journal_root.iterdir())
    assert migration.Journal.open(jdir).plan["checksum"] == "hvkit-disk-v3"
    text = (jdir / "journal.jsonl").read_text()
    (jdir / "journal.jsonl").write_text(text.replace('"checksum": "hvkit-disk-v3"', '"checksum": "hvkit-disk-v9"', 1))
    with pytest.raises(InvalidSpec, match="hvkit-disk-v9"):
        migration.resume(jdir, src, dst)
    migration.rollback(jdir, src, dst)  # a rollback needs no checksum
    assert inventory(dst) == ([], [])


def test_snapshot_export_keeps_the_source_running(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path
) -> None:
    src, dst = pair
    source = make_source(src, tmp_path, running=True, disks=((8, "default", "qcow2"),))
    plan = migration.plan(src, "web-1", dst, snapshot=True)
    assert plan.ok, plan.problems
    result = plan.run()
    assert result.verified and [d.source_checksum for d in result.disks] == source.checksums
    assert src.vms.get("web-1").power_state is hvkit.PowerState.RUNNING
    assert src.snapshots.list("web-1") == []  # the snapshot hvkit took is gone again


def test_target_name_taken_between_plan_and_run(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, journal_root: Path
) -> None:
    """Someone else's VM of the same name appears after planning: the run fails, and it is not touched."""
    src, dst = pair
    make_source(src, tmp_path)
    plan = migration.plan(src, "web-1", dst)
    other = dst.vms.create(hvkit.VMSpec(name="web-1", cpus=1, memory_mib=256))
    with pytest.raises(AlreadyExists):
        plan.run()
    assert dst.vms.get("web-1").id == other.id
    assert inventory(dst) == (["web-1"], [])


# -- killed processes: resume and roll back ------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys, hvkit
    from hvkit import migration
    src, dst, jdir = sys.argv[1:4]
    with hvkit.connect(src) as s, hvkit.connect(dst) as d:
        plan = migration.plan(s, "web-1", d, power_off=True)
        plan.run(start=True, journal_dir=jdir, parallel=1)
    print("finished")
    """
)
KILL_POINTS = [f"{s}:{p}" for s in STEPS for p in ("begin", "acted")] + ["vm.start:done"]


@pytest.mark.parametrize("then", ["resume", "rollback"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_each_step(names: tuple[str, str], tmp_path: Path, point: str, then: str) -> None:
    state = tmp_path / "state"
    src_url, dst_url = sim_url(names[0], state_dir=state), sim_url(names[1], state_dir=state)
    with hvkit.connect(src_url) as src:
        source = make_source(src, tmp_path, running=True)
    forget(*names)
    jdir = tmp_path / "journal"
    env = {**env_without_crash(), "HVKIT_MIGRATION_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", CHILD, src_url, dst_url, str(jdir)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -9, proc.stderr  # killed (SIGKILL) at the point, not finished
    assert "finished" not in proc.stdout
    lines = (jdir / "journal.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "plan"
    forget(*names)
    with hvkit.connect(src_url) as src, hvkit.connect(dst_url) as dst:
        if then == "resume":
            result = migration.resume(jdir, src, dst)
            assert result.verified
            assert [d.target_checksum for d in result.disks] == source.checksums
            vm = dst.vms.get("web-1")
            assert vm.power_state is hvkit.PowerState.RUNNING
            assert len(vm.disks) == 2 and len(dst.volumes.list()) == 2  # nothing doubled by the retry
            assert src.vms.get("web-1").power_state is hvkit.PowerState.STOPPED
        else:
            migration.rollback(jdir, src, dst)
            assert inventory(dst) == ([], [])
            assert src.vms.get("web-1").power_state is hvkit.PowerState.RUNNING
            assert migration.Journal.open(jdir).current_status == "rolled-back"
        assert [checksum_of(src, d.volume or "", tmp_path) for d in source.vm.disks] == source.checksums


def test_no_secret_in_plan_result_or_journal(names: tuple[str, str], tmp_path: Path, journal_root: Path) -> None:
    secret = "Very-s3cret-pa55"
    url = f"sim://admin:{secret}@{names[0]}?local_files=true"
    with hvkit.connect(url) as src, hvkit.connect(sim_url(names[1])) as dst:
        make_source(src, tmp_path, disks=((4, "default", "qcow2"),))
        plan = migration.plan(src, "web-1", dst)
        result = plan.run()
        texts = [str(plan), repr(plan), str(result), repr(result)]
        texts += [p.read_text() for p in Path(result.journal).rglob("*") if p.is_file()]
        assert all(secret not in t for t in texts)
