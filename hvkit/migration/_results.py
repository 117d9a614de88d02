"""What a migration reports: progress, the disks it moved, and its result."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import IO

import attrs

from ..errors import InvalidSpec
from ..models import VM

__all__ = ["DiskResult", "MigrationResult", "Progress", "ProgressArg", "reporter"]


@attrs.frozen
class Progress:
    """One progress report: ``disk`` ("" for VM steps), ``phase``, and bytes ``done`` of ``total``."""

    disk: str
    phase: str  # export, checksum, import, verify, create, start, cleanup, done
    done: int
    total: int


ProgressArg = Callable[[Progress], None] | bool | None


@attrs.frozen
class DiskResult:
    name: str
    volume: str  # the target volume id
    size: int
    source_checksum: str
    target_checksum: str | None  # None when verify=False
    bytes_allocated: int  # data bytes the source disk holds (what was read and hashed)
    bytes_moved: int  # bytes that crossed the vendors' APIs (export + import)

    @property
    def verified(self) -> bool:
        return self.target_checksum == self.source_checksum


@attrs.frozen
class MigrationResult:
    vm: VM  # the new VM on the target
    disks: tuple[DiskResult, ...]
    journal: str
    seconds: float
    started: bool
    warnings: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return all(d.verified for d in self.disks)

    @property
    def bytes_moved(self) -> int:
        return sum(d.bytes_moved for d in self.disks)

    def __str__(self) -> str:
        lines = [f"VM {self.vm.name!r} is on the target ({self.vm.power_state.value}) after {self.seconds:.1f} s"]
        for d in self.disks:
            state = "verified" if d.verified else "NOT verified" if d.target_checksum else "not checked"
            lines.append(f"  disk {d.name}: {state}; source {d.source_checksum}, target {d.target_checksum}; "
                         f"{d.bytes_moved} bytes moved for {d.bytes_allocated} allocated")  # fmt: skip
        lines.append(f"  journal: {self.journal}")
        return "\n".join(lines)


# -- progress ------------------------------------------------------------------------------------------------
def reporter(progress: ProgressArg) -> Callable[[Progress], None]:
    if progress is None or progress is False:
        return lambda p: None
    if progress is True:
        return _StderrProgress(sys.stderr)
    if not callable(progress):
        raise InvalidSpec("progress must be a callable taking a Progress, or True")
    lock = threading.Lock()
    user = progress

    def report(p: Progress) -> None:
        with lock:
            user(p)

    return report


class _StderrProgress:
    """Plain progress lines (the CLI draws bars); at most one line per disk and phase every 10%."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.last: dict[tuple[str, str], int] = {}

    def __call__(self, p: Progress) -> None:
        pct = 100 if p.total <= 0 else min(100, p.done * 100 // p.total)
        key = (p.disk, p.phase)
        with self.lock:
            if key in self.last and pct < 100 and pct - self.last[key] < 10:
                return
            if self.last.get(key) == 100:
                return
            self.last[key] = pct
            self.out.write(f"{p.disk or 'vm'}: {p.phase} {pct}%\n")
            self.out.flush()
