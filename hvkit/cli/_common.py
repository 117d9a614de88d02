"""Shared CLI plumbing: connecting, tables, JSON, progress bars, exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import os
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .. import errors
from .._connect import connect
from .._url import parse_url
from ..hypervisor import Hypervisor
from ..tasks import Task, TaskInfo

__all__ = ["EXIT_CODES", "ProgressBar", "emit", "exit_code", "one_line", "open_hv", "run_task", "to_jsonable"]

# Exit codes: one per error family, documented in docs/cli.md.
EXIT_CODES: tuple[tuple[type[errors.HvkitError], int], ...] = (
    (errors.InvalidSpec, 2),
    (errors.NotFound, 3),
    (errors.AlreadyExists, 4),
    (errors.InvalidState, 4),
    (errors.Conflict, 4),
    (errors.Unsupported, 5),
    (errors.AuthenticationError, 6),
    (errors.ConnectionError, 6),
    (errors.Timeout, 7),
)


def exit_code(exc: errors.HvkitError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


def one_line(exc: BaseException) -> str:
    """An error's message on one line (a message may quote user input holding newlines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def default_sim_state() -> str:
    return os.environ.get("HVKIT_SIM_STATE_DIR") or str(Path("~/.local/share/hvkit/sim").expanduser())


def open_hv(args: argparse.Namespace) -> Hypervisor:
    """Connect as the global options say: --url, --profile, $HVKIT_URL, else the persistent ``sim://``."""
    url = args.url
    if url is None and not args.profile:  # an empty --url is refused by connect(), not taken as sim://
        url = os.environ.get("HVKIT_URL") or "sim://"
    options: dict[str, Any] = {}
    if url is not None and parse_url(url).kind == "sim" and "state_dir" not in url:
        options["state_dir"] = default_sim_state()  # so one CLI session sees the VMs of the last
    return connect(url, profile=args.profile, **options)


def to_jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.repr is not False}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict | types.MappingProxyType):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, frozenset | set) else items
    return value


def emit(
    args: argparse.Namespace,
    rows: Sequence[Any],
    columns: Sequence[tuple[str, Callable[[Any], object]]],
    out: IO[str] | None = None,
) -> None:
    """Print ``rows`` as JSON (--json) or as an aligned table of ``columns``."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        json.dump([to_jsonable(r) for r in rows], out, indent=2, sort_keys=True)
        out.write("\n")
        return
    table = [[title for title, _ in columns]] + [[_cell(get(r)) for _, get in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, Iterable) and not isinstance(value, str):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.live = self.stream.isatty()

    def __call__(self, info: TaskInfo) -> None:
        if not self.live:
            return
        filled = self.width * info.progress // 100
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {info.progress:3d}% {self.label}")
        if info.state.done:
            self.stream.write("\n")
        self.stream.flush()


def run_task(task: Task, label: str, timeout: float | None = None) -> Any:
    """Wait for ``task`` with a progress bar; return its result."""
    return task.wait(timeout, on_progress=ProgressBar(label))
