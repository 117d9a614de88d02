"""Benchmark: incremental replication syncs of a guest with a 1 GiB disk, 25% allocated with random data.

For each pair (sim -> sim; with ``--kvm`` also sim -> KVM; with ``--proxmox`` also sim -> the Proxmox
simulator, its node reached over the loopback SSH server of scripts/setup.d/60-migration.sh, the replica's
volume written in place there: digests and checksum computed on the node, changed blocks shipped as a qcow2
patch and committed, every byte that crossed SSH counted), the replica is made (the first sync, a full
migration copy), then, run by run, 1% of the disk (10 MiB of 1 GiB) is changed and synced:

* bytes sent by the incremental sync (block data + the digests and ranges that name the blocks) over the
  bytes changed (goal <= 1.1x), for two write patterns: 64 KiB writes on 64 KiB boundaries, and 1 MiB
  writes at 4 KiB-aligned offsets (each run may touch one more 64 KiB block at each end);
* the incremental sync's time against the first sync (a full copy) and a bare ``qemu-img convert``.

    python bench/replication.py [--size-gib 1] [--fill 0.25] [--change 0.01] [--repeat 5] [--kvm] [--proxmox]
                                [--kvm-cbt]

``--kvm-cbt``: KVM -> KVM instead, the source VM running on QEMU, the 1% written through QEMU's block layer,
syncs taking the changed blocks from QEMU's dirty bitmaps (libvirt checkpoints and backup jobs).

The figures are medians over the runs (the 2-core machine is shared; single runs scatter).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hvkit
from hvkit import replication
from hvkit.hypervisor import Hypervisor

MIB = 1024 * 1024
BLOCK = 64 * 1024


def write_blocks(path: str, fmt: str, writes: list[tuple[int, bytes]], tmp: Path) -> None:
    args = ["qemu-io", "-f", fmt]
    for n, (offset, data) in enumerate(writes):
        chunk = tmp / f"w{n}.bin"
        chunk.write_bytes(data)
        args += ["-c", f"write -s {chunk} {offset} {len(data)}"]
    subprocess.run([*args, path], check=True, capture_output=True)
    for n in range(len(writes)):
        (tmp / f"w{n}.bin").unlink()


def changes(size: int, total: int, length: int, align: int, rnd: random.Random) -> list[tuple[int, bytes]]:
    """Non-overlapping writes of ``length`` bytes at ``align``-aligned offsets, ``total`` bytes in all."""
    taken: set[int] = set()
    out: list[tuple[int, bytes]] = []
    while len(out) * length < total:
        off = rnd.randrange(0, (size - length) // align) * align
        span = set(range(off // BLOCK, (off + length - 1) // BLOCK + 1))
        if span & taken:
            continue
        taken |= span
        out.append((off, rnd.randbytes(length)))
    return out


def source(hv: Hypervisor, size: int, fill: float, tmp: Path) -> tuple[hvkit.VM, str]:
    vm = hv.vms.create(hvkit.VMSpec(name="bench-1", cpus=1, memory_mib=512,
                                    disks=[hvkit.DiskSpec(size_gib=size / 1024**3, format="qcow2")],
                                    nics=[hvkit.NicSpec("default")]))  # fmt: skip
    vol = hv.volumes.get(vm.disks[0].volume or "")
    path = hv.backend.local_path(vol) or ""
    rnd = random.Random(1)
    chunks = int(size * fill) // (4 * MIB)
    offsets = sorted(rnd.sample(range(size // (4 * MIB)), chunks))
    write_blocks(path, "qcow2", [(o * 4 * MIB, rnd.randbytes(4 * MIB)) for o in offsets], tmp)
    hv.vms.start(vm)
    return hv.vms.get(vm.id), path


def bare_convert(path: str, tmp: Path) -> float:
    out = tmp / "bare.qcow2"
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", path, str(out)], check=True)
    took = time.perf_counter() - t0
    out.unlink()
    return took


def bench_pair(
    label: str,
    target_url: str,
    args: argparse.Namespace,
    connect: Callable[[str], Hypervisor] = hvkit.connect,
    maps: dict[str, Any] | None = None,
) -> None:
    size = int(args.size_gib * 1024**3)
    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="hvkit-bench-repl-"))
    os.environ["HVKIT_REPLICATION_DIR"] = str(tmp / "replications")
    os.environ["HVKIT_MIGRATION_DIR"] = str(tmp / "migrations")
    rnd = random.Random(7)
    src = hvkit.connect(f"sim://bsrc{tag}")
    dst = connect(target_url.replace("{tag}", tag))
    replica_name = f"hvt-bench-{tag}"
    try:
        vm, path = source(src, size, args.fill, tmp)
        t0 = time.perf_counter()
        replica = replication.create(src, vm, dst, replica_name=replica_name, keep=1, keep_macs=False,
                                     **(maps or {"network_map": {"default": "default"}}))  # fmt: skip
        first = time.perf_counter() - t0
        bare = bare_convert(path, tmp)
        total = int(size * args.change)
        print(f"\n{label}: first sync (full copy, verified) {first:.2f} s; bare qemu-img convert {bare:.2f} s")
        print(f"{'pattern':<34} {'changed':>9} {'sent':>10} {'sent/changed':>13} {'sync s':>8} {'sync/full':>10}")
        for pattern, length, align in (("64 KiB writes, 64 KiB-aligned", BLOCK, BLOCK),
                                       ("1 MiB writes, 4 KiB-aligned", MIB, 4096)):  # fmt: skip
            ratios, times, sent_all = [], [], []
            for _ in range(args.repeat):
                writes = changes(size, total, length, align, rnd)
                write_blocks(path, "qcow2", writes, tmp)
                changed = sum(len(d) for _, d in writes)
                t0 = time.perf_counter()
                result = replica.sync(src, dst)
                times.append(time.perf_counter() - t0)
                assert result.verified
                ratios.append(result.bytes_sent / changed)
                sent_all.append(result.bytes_sent)
            print(f"{pattern:<34} {changed / MIB:>7.2f}MiB {statistics.median(sent_all) / MIB:>8.2f}MiB "
                  f"{statistics.median(ratios):>12.3f}x {statistics.median(times):>8.2f} "
                  f"{statistics.median(times) / first:>9.2f}x")  # fmt: skip
    finally:
        for hv, name in ((dst, replica_name), (src, "bench-1")):
            for v in hv.vms.list():
                if v.name == name:
                    full = hv.vms.get(v.id)
                    for s in hv.snapshots.list(full):
                        hv.snapshots.delete(s)
                    hv.vms.delete(full, force=True)
        src.close()
        dst.close()
        shutil.rmtree(tmp, ignore_errors=True)
        from hvkit.backends.sim._world import forget

        forget(f"bsrc{tag}")
        forget(f"bdst{tag}")


@contextmanager
def proxmox_target() -> Iterator[Callable[[str], Hypervisor]]:
    """The Proxmox simulator with SSH access to its node (the loopback OpenSSH server)."""
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    ssh_dir = Path(os.environ.get("HVKIT_MIGRATION_SSH_DIR", "/var/lib/hvkit/migration-ssh"))
    if not (ssh_dir / "known_hosts").is_file():
        raise SystemExit(f"no loopback SSH server set up in {ssh_dir}: run scripts/setup.d/60-migration.sh")
    ssh: dict[str, Any] = {
        "ssh_port": os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222"),
        "ssh_key": str(ssh_dir / "client_ed25519"),
        "ssh_known_hosts": str(ssh_dir / "known_hosts"),
        "ssh_host_map": "pve1=127.0.0.1",
    }
    with ProxmoxSimulator(nodes=1, task_delay=0.0) as sim:
        yield lambda url: hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=30, **ssh)


def qemu_write(domain: str, writes: list[tuple[int, bytes]], tmp: Path) -> None:
    """Write into a running guest's disk through QEMU's block layer (HMP qemu-io): its dirty bitmaps see it."""
    folder = Path(tempfile.mkdtemp(prefix="hvkit-bench-w-"))
    folder.chmod(0o755)  # QEMU runs as its own user
    try:
        for n, (offset, data) in enumerate(writes):
            chunk = folder / f"{n}.bin"
            chunk.write_bytes(data)
            chunk.chmod(0o644)
            cmd = f'qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -s {chunk} {offset} {len(data)}"'
            subprocess.run(["virsh", "-c", "qemu:///system", "qemu-monitor-command", domain, "--hmp", cmd],
                           check=True, capture_output=True, timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_kvm_cbt(args: argparse.Namespace) -> None:
    """KVM -> KVM on real QEMU: the source VM runs (no OS needed), writes go through QEMU, syncs use dirty bitmaps."""
    size = int(args.size_gib * 1024**3)
    tag = uuid.uuid4().hex[:6]
    prefix = f"hvt-bench-{tag}-"
    tmp = Path(tempfile.mkdtemp(prefix="hvkit-bench-repl-"))
    os.environ["HVKIT_REPLICATION_DIR"] = str(tmp / "replications")
    os.environ["HVKIT_MIGRATION_DIR"] = str(tmp / "migrations")
    rnd = random.Random(9)
    src = hvkit.connect("kvm:///system", virt_type="qemu")
    dst = hvkit.connect("kvm:///system", virt_type="qemu")
    replica = None
    vm = None
    try:
        vol = src.volumes.create("default", f"{prefix}src.qcow2", args.size_gib, format="qcow2")
        path = src.backend.local_path(vol) or ""
        chunks = int(size * args.fill) // (4 * MIB)
        offsets = sorted(rnd.sample(range(size // (4 * MIB)), chunks))
        write_blocks(path, "qcow2", [(o * 4 * MIB, rnd.randbytes(4 * MIB)) for o in offsets], tmp)
        vm = src.vms.create(hvkit.VMSpec(name=prefix + "src", cpus=1, memory_mib=64,
                                         disks=[hvkit.DiskSpec(volume=vol.id)]))  # fmt: skip
        vm = src.vms.start(vm)
        t0 = time.perf_counter()
        replica = replication.create(src, vm, dst, replica_name=prefix + "replica", keep=1, keep_macs=False)
        first = time.perf_counter() - t0
        assert replica.state.cbt, "no changed-block tracking on this QEMU"
        total = int(size * args.change)
        print(f"\nKVM -> KVM (QEMU dirty bitmaps): first sync (full copy, verified) {first:.2f} s")
        print(f"{'pattern':<34} {'changed':>9} {'sent':>10} {'sent/changed':>13} {'sync s':>8} {'sync/full':>10}")
        ratios, times, sent_all = [], [], []
        for _ in range(args.repeat):
            writes = changes(size, total, BLOCK, BLOCK, rnd)
            qemu_write(vm.name, writes, tmp)
            changed = sum(len(d) for _, d in writes)
            t0 = time.perf_counter()
            result = replica.sync(src, dst)
            times.append(time.perf_counter() - t0)
            assert result.verified and result.disks[0].method == "cbt"
            ratios.append(result.bytes_sent / changed)
            sent_all.append(result.bytes_sent)
        sent = statistics.median(sent_all) / MIB
        print(f"{'64 KiB writes, 64 KiB-aligned':<34} {changed / MIB:>7.2f}MiB {sent:>8.2f}MiB "
              f"{statistics.median(ratios):>12.3f}x {statistics.median(times):>8.2f} "
              f"{statistics.median(times) / first:>9.2f}x")  # fmt: skip
    finally:
        if vm is not None:
            src.vms.stop(vm.id, force=True)
        if replica is not None:
            replica.remove(src, dst)
        if vm is not None:
            src.vms.delete(vm.id, force=True)
        src.close()
        dst.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gib", type=float, default=1.0)
    p.add_argument("--fill", type=float, default=0.25)
    p.add_argument("--change", type=float, default=0.01)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--kvm", action="store_true", help="also sim -> KVM (qemu:///system, pool 'default')")
    p.add_argument("--proxmox", action="store_true", help="also sim -> the Proxmox simulator, over SSH to its node")
    p.add_argument("--kvm-cbt", action="store_true", help="only KVM -> KVM on QEMU with changed-block tracking")
    args = p.parse_args()
    if args.kvm_cbt:
        bench_kvm_cbt(args)
        return 0
    bench_pair("sim -> sim", "sim://bdst{tag}", args)
    if args.kvm:
        bench_pair("sim -> KVM", "kvm:///system", args)
    if args.proxmox:
        with proxmox_target() as connect:
            maps = {"network_map": {"default": "vmbr0"}, "storage_map": {"default": "local"}}
            bench_pair("sim -> Proxmox over SSH", "", args, connect, maps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
