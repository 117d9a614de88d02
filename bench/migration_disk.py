"""Benchmark: migrate a guest with a 1 GiB disk, 25% allocated with random data, between two backends.

Prints, for each pair of backends available on this machine:

* end-to-end migration time (plan + export + checksum + import + verify on the target + create VM)
  over a bare ``qemu-img convert`` between the same formats (goal <= 1.5x), and
* bytes moved over bytes allocated (goal <= 1.1).

    python bench/migration_disk.py [--size-gib 1] [--fill 0.25] [--repeat 7] [--kvm] [--floor]
                                   [--checksum hvkit-disk-v2]

Then, per pair, where the time goes: the median, over the runs, of the time spent in each step of the run
(the plan; the runner's steps, measured by wrapping them here: nested steps count inside their parents,
and steps of one disk run beside the VM's creation, so the column does not add up to the total).

``--floor`` adds, per pair, what any verified copy pays on this machine, measured without hvkit: the bare
convert alone, the same convert while the source is checksummed beside it, and the read-back after it.

The machine's page cache and disk are shared with everything else running, so single runs scatter
(a bare convert of 0.13 s now and then takes 0.4 s): the figure is the median of the runs' ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import hvkit
from hvkit import migration
from hvkit.hypervisor import Hypervisor

MIB = 1024 * 1024
CHUNK = 4 * MIB
# the steps of a migration run timed for the breakdown: (object, attribute, label)
STEPS = [
    ("plan", "migration.plan (reads both sides, decides)"),
    ("_prepare_source", "  source prepared (snapshot or none)"),
    ("_disks", "  disks: export, checksum, import (all disks)"),
    ("_export", "    export (qemu-img map of the source)"),
    ("_source_checksum", "    source checksum (beside the copy)"),
    ("_import", "    import (target volume + convert)"),
    ("_create_vm_verifying", "  VM created, imports read back beside it"),
    ("_verify", "    read back and compare one disk"),
    ("_create_vm", "    target VM defined"),
    ("_verify_all", "  verification collected"),
    ("_cleanup_success", "  journal closed, staging removed"),
]


class Timings:
    """Wraps the migration runner's steps (and migration.plan) to time them, run by run."""

    def __init__(self) -> None:
        self.runs: list[dict[str, float]] = []
        self.now: dict[str, float] = {}
        self._undo: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, attr: str) -> None:
        fn = getattr(owner, attr)
        timings = self

        def timed(*a: object, **kw: object) -> object:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings.now[attr] = timings.now.get(attr, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, fn))

    def __enter__(self) -> Timings:
        from hvkit.migration import _run

        self._wrap(migration, "plan")
        for attr, _ in STEPS[1:]:
            self._wrap(_run.Runner, attr)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attr, fn in reversed(self._undo):
            setattr(owner, attr, fn)

    def next_run(self) -> None:
        self.runs.append(self.now)
        self.now = {}

    def table(self, label: str, total: float, bare: float) -> str:
        lines = [f"{label}: where the time goes (median of {len(self.runs)} runs)"]
        for attr, what in STEPS:
            values = [r.get(attr, 0.0) for r in self.runs]
            lines.append(f"  {what:<46} {statistics.median(values) * 1000:>7.1f} ms")
        lines.append(f"  {'migration, end to end':<46} {total * 1000:>7.1f} ms")
        lines.append(f"  {'bare qemu-img convert':<46} {bare * 1000:>7.1f} ms")
        return "\n".join(lines)


def make_content(path: Path, size: int, fill: float) -> int:
    """A sparse raw file: every 4 MiB chunk out of 1/fill holds random data. Returns the data bytes."""
    stride = max(CHUNK, int(CHUNK / fill))
    written = 0
    with path.open("wb") as f:
        f.truncate(size)
        for off in range(0, size, stride):
            f.seek(off)
            f.write(os.urandom(min(CHUNK, size - off)))
            written += min(CHUNK, size - off)
    return written


def source_vm(hv: Hypervisor, name: str, content: Path, size_gib: float, fmt: str, pool: str | None) -> hvkit.VM:
    disk = hvkit.DiskSpec(size_gib=size_gib, format=fmt, pool=pool)
    vm = hv.vms.create(hvkit.VMSpec(name=name, cpus=1, memory_mib=256, disks=[disk]))
    hv.volumes.upload(vm.disks[0].volume or "", content)
    return hv.vms.get(vm.id)


def bare_convert(path: str, fmt: str, workdir: Path) -> float:
    out = workdir / f"bare-{uuid.uuid4().hex[:6]}.{fmt}"
    os.sync()  # start both measurements with no dirty pages of earlier runs to write back
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", fmt, path, str(out)], check=True)
    took = time.perf_counter() - t0
    out.unlink()
    return took


def floor_probe(path: str, fmt: str, size: int, work: Path, repeat: int) -> str:
    """What a verified migration cannot avoid, measured without hvkit's runner: the bare convert alone, the
    same convert while the source is checksummed beside it (a second read of the data, as the migration
    does), and the read-back of the converted image (which cannot start before the convert ends)."""
    import concurrent.futures

    from hvkit.driver import DiskImage
    from hvkit.models import DiskFormat

    source = DiskImage(path, DiskFormat(fmt), size, False)
    alone, beside, readback = [], [], []
    for _ in range(repeat):
        alone.append(bare_convert(path, fmt, work))
        out = work / f"floor-{uuid.uuid4().hex[:6]}.{fmt}"
        os.sync()
        with concurrent.futures.ThreadPoolExecutor(1) as side:
            t0 = time.perf_counter()
            summed = side.submit(migration.checksum, source, workers=1)
            subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", fmt, path, str(out)], check=True)
            converted = time.perf_counter() - t0
            summed.result()
        beside.append(max(converted, time.perf_counter() - t0))
        t0 = time.perf_counter()
        migration.checksum(DiskImage(str(out), DiskFormat(fmt), source.size, False))
        readback.append(time.perf_counter() - t0)
        out.unlink()
    a, b, r = (statistics.median(x) for x in (alone, beside, readback))
    return "\n".join([
        f"floor on this machine ({os.cpu_count()} CPUs), median of {repeat}: what any verified copy pays",
        f"  bare qemu-img convert, alone                   {a * 1000:7.1f} ms",
        f"  the same convert, source checksummed beside it {b * 1000:7.1f} ms ({b / a:.2f}x)",
        f"  read back and checksum the result afterwards   {r * 1000:7.1f} ms",
        f"  floor: convert beside the checksum, then read  {(b + r) * 1000:7.1f} ms = {(b + r) / a:.2f}x the bare one",
    ])  # fmt: skip


def one_pair(label: str, src: Hypervisor, dst: Hypervisor, args: argparse.Namespace, content: Path, work: Path,
             src_pool: str | None = None, dst_pool: str | None = None) -> dict[str, float]:  # fmt: skip
    name = f"bench-{uuid.uuid4().hex[:6]}"
    vm = source_vm(src, name, content, args.size_gib, args.format, src_pool)
    path = src.backend.local_path(src.volumes.get(vm.disks[0].volume or ""))
    times, ratios, moved_ratio, bares = [], [], [], []
    timings = Timings()
    try:
        for i in range(args.repeat):
            bare = bare_convert(path, args.format, work) if path else float("nan")
            target_name = f"{name}-to-{i}"
            storage = {vm.disks[0].pool or "": dst_pool} if dst_pool else None
            os.sync()
            with timings:
                t0 = time.perf_counter()
                plan = migration.plan(src, vm.name, dst, name=target_name, storage_map=storage, disk_format=args.format)
                if plan.problems:
                    raise SystemExit(f"{label}: the plan has problems: {plan.problems}")
                result = plan.run(journal_dir=work / f"journal-{target_name}", checksum=args.checksum)
                took = time.perf_counter() - t0
            timings.next_run()
            bares.append(bare)
            d = result.disks[0]
            assert result.verified, result
            times.append(took)
            ratios.append(took / bare)
            moved_ratio.append(d.bytes_moved / d.bytes_allocated)
            print(f"  {label} run {i + 1}: migration {took:.2f} s, bare qemu-img convert {bare:.2f} s, "
                  f"ratio {took / bare:.2f}x; moved {d.bytes_moved / MIB:.0f} MiB for "
                  f"{d.bytes_allocated / MIB:.0f} MiB "
                  f"allocated ({d.bytes_moved / d.bytes_allocated:.3f})")  # fmt: skip
            dst.vms.delete(result.vm)
        print(timings.table(label, statistics.median(times), statistics.median(bares)))
        if path and args.floor:
            print(floor_probe(path, args.format, int(args.size_gib * 1024 * MIB), work, args.repeat))
    finally:
        src.vms.delete(vm.id)
    return {"time": statistics.median(times), "ratio": statistics.median(ratios), "moved": max(moved_ratio)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--fill", type=float, default=0.25)
    ap.add_argument("--format", default="qcow2", choices=["qcow2", "raw"])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--floor", action="store_true", help="also measure what any verified copy pays (see floor_probe)")
    ap.add_argument("--checksum", default=migration.ALGORITHM, choices=migration.ALGORITHMS)
    ap.add_argument("--kvm", action="store_true", help="also sim -> KVM (qemu:///system, needs libvirtd)")
    args = ap.parse_args()
    if shutil.which("qemu-img") is None:
        print("qemu-img is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hvkit-bench-") as tmp:
        work = Path(tmp)
        content = work / "content.raw"
        size = int(args.size_gib * 1024 * MIB)
        data = make_content(content, size, args.fill)
        print(f"guest disk: {size / MIB:.0f} MiB, {data / MIB:.0f} MiB random data ({data / size:.0%}), "
              f"format {args.format}, checksum {args.checksum}")  # fmt: skip
        results = {}
        tag = uuid.uuid4().hex[:6]
        src = hvkit.connect(f"sim://bench-a-{tag}?local_files=true&task_delay=0")
        dst = hvkit.connect(f"sim://bench-b-{tag}?local_files=true&task_delay=0")
        results["sim -> sim"] = one_pair("sim -> sim", src, dst, args, content, work)
        if args.kvm:
            try:
                kvm = hvkit.connect("qemu:///system?local_files=true")
            except (hvkit.errors.HvkitError, ImportError) as exc:
                print(f"  sim -> kvm skipped: {exc}")
            else:
                pool = "default" if any(p.name == "default" for p in kvm.pools.list()) else None
                results["sim -> kvm"] = one_pair("sim -> kvm", src, kvm, args, content, work, dst_pool=pool)
        print()
        print(f"{'pair':<14} {'migration':>10} {'over bare convert':>18} {'moved/allocated':>16}")
        for label, r in results.items():
            ok_t = "ok" if r["ratio"] <= 1.5 else "OVER GOAL"
            ok_m = "ok" if r["moved"] <= 1.1 else "OVER GOAL"
            print(f"{label:<14} {r['time']:>9.2f}s {r['ratio']:>13.2f}x {ok_t:>4} {r['moved']:>11.3f} {ok_m:>4}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
