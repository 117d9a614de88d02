"""Errors of the migration pipeline (all are :class:`hvkit.errors.HvkitError`)."""

from __future__ import annotations

from ..errors import HvkitError, InvalidSpec

__all__ = ["ChecksumMismatch", "MigrationError", "PlanProblems"]


class MigrationError(HvkitError):
    """A migration step failed; the message says which step and what was undone."""


class ChecksumMismatch(MigrationError):
    """What the target holds differs from what the source held; the target VM is not started."""

    def __init__(self, disk: str, source: str, target: str) -> None:
        self.disk = disk
        self.source = source
        self.target = target
        super().__init__(
            f"disk {disk!r}: the target's content does not match the source's "
            f"(source checksum {source}, target checksum {target}); the target VM was not started"
        )


class PlanProblems(InvalidSpec):
    """The plan has blocking problems; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the migration cannot run; nothing was changed:\n{lines}")
