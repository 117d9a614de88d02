"""Shared CLI plumbing, one of each: connecting (open_hv / open_url), tables and JSON, the progress printer
(ProgressBars), the error path (report_error) and its exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .. import errors
from .._connect import connect
from .._units import format_bytes
from .._url import parse_url
from ..hypervisor import Hypervisor
from ..tasks import Task, TaskInfo

__all__ = [
    "EXIT_CODES",
    "EXIT_PLAN_PROBLEMS",
    "ProgressBar",
    "ProgressBars",
    "emit",
    "exit_code",
    "one_line",
    "open_hv",
    "open_url",
    "pairs",
    "report_error",
    "run_task",
    "to_jsonable",
]

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
EXIT_PLAN_PROBLEMS = 8  # a plan (hvkit migrate) lists problems: nothing was changed
EXIT_INTERRUPTED = 130


def exit_code(exc: errors.HvkitError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


def one_line(exc: BaseException) -> str:
    """An error's message on one line (a message may quote user input holding newlines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def report_error(exc: BaseException, stream: IO[str] | None = None) -> int:
    """The CLI's one error path: one line on ``stream`` (stderr), notes appended; return the exit code."""
    stream = stream or sys.stderr
    notes = "; ".join(" ".join(n.split()) for n in getattr(exc, "__notes__", ()) if isinstance(n, str))
    tail = f" ({notes})" if notes else ""
    if isinstance(exc, KeyboardInterrupt):
        stream.write(f"hvkit: interrupted{tail}\n")
        return EXIT_INTERRUPTED
    if isinstance(exc, errors.HvkitError):
        text, code = one_line(exc), exit_code(exc)
    elif isinstance(exc, ImportError):  # a backend whose SDK is not installed: the message names the extra
        text, code = one_line(exc), 5
    else:  # a bug, still one line: --debug shows where
        text, code = f"unexpected {type(exc).__name__}: {one_line(exc)} (--debug shows more)", 1
    stream.write(f"hvkit: error: {text}{tail}\n")
    return code


_KEPT_IN_STATE_DIR = frozenset({"sim"})  # backends whose VMs the CLI keeps on disk between commands


def default_sim_state() -> str:
    return os.environ.get("HVKIT_SIM_STATE_DIR") or str(Path("~/.local/share/hvkit/sim").expanduser())


def open_url(url: str | None, profile: str | None = None) -> Hypervisor:
    """Connect like every hvkit command does: a ``sim://`` URL without ``state_dir`` keeps its VMs in the
    CLI's sim state folder (``$HVKIT_SIM_STATE_DIR``), so one command sees the VMs of the last."""
    options: dict[str, Any] = {}
    if url is not None and parse_url(url).kind in _KEPT_IN_STATE_DIR and "state_dir" not in url:
        options["state_dir"] = default_sim_state()
    return connect(url, profile=profile, **options)


def open_hv(args: argparse.Namespace) -> Hypervisor:
    """Connect as the global options say: --url, --profile, $HVKIT_URL, else the persistent ``sim://``."""
    url = args.url
    if url is None and not args.profile:  # an empty --url is refused by connect(), not taken as sim://
        url = os.environ.get("HVKIT_URL") or "sim://"
    return open_url(url, args.profile)


def pairs(what: str, items: list[str]) -> dict[str, str]:
    """``SOURCE=TARGET`` options (``--network-map`` and the like) as a mapping; InvalidSpec for any other shape."""
    out: dict[str, str] = {}
    for item in items:
        a, sep, b = item.partition("=")
        if not sep or not a.strip() or not b.strip():
            raise errors.InvalidSpec(f"{what} takes SOURCE=TARGET, got {item!r}")
        out[a.strip()] = b.strip()
    return out


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


class ProgressBars:
    """The CLI's progress printer: one bar per row (a disk, a task, a move), redrawn in place on a terminal;
    elsewhere a plain line at every quarter (or nothing, with ``lines=False``)."""

    def __init__(self, stream: IO[str] | None = None, *, width: int = 30, interval: float = 0.1, lines: bool = True):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.interval = interval
        self.lines = lines
        self.rows: dict[str, tuple[str, int, int]] = {}
        self.drawn = 0
        self.last = 0.0
        self.lock = threading.Lock()
        self.logged: dict[tuple[str, str], int] = {}

    def update(self, key: str, phase: str, done: int, total: int) -> None:
        """Row ``key`` is at ``done`` of ``total`` (bytes, or percent with total 100) in ``phase``."""
        with self.lock:
            self.rows[key] = (phase, done, total)
            if self.tty:
                now = time.monotonic()
                if now - self.last >= self.interval or done >= total:
                    self.last = now
                    self._draw()
            elif self.lines:
                pct = _pct(done, total)
                step = (key, phase)
                last = self.logged.get(step)
                if last is None or (pct == 100 and last != 100) or pct - last >= 25:
                    self.logged[step] = pct
                    self.stream.write(f"{self._line(key, phase, done, total)}\n")
                    self.stream.flush()

    def _line(self, key: str, phase: str, done: int, total: int) -> str:
        pct = _pct(done, total)
        fill = self.width * pct // 100
        bar = "#" * fill + "." * (self.width - fill)
        amount = f"{format_bytes(done)}/{format_bytes(total)}" if total > 100 else ""
        return f"{key[:16]:<16} {phase:<9} [{bar}] {pct:3d}% {amount}".rstrip()

    def _draw(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")
        for key, (phase, done, total) in self.rows.items():
            self.stream.write("\x1b[2K" + self._line(key, phase, done, total) + "\n")
        self.drawn = len(self.rows)
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (a step started or ended); the bars are drawn again below it."""
        with self.lock:
            self.stream.write(f"{text}\n")
            self.stream.flush()
            self.drawn = 0

    def close(self) -> None:
        """Draw the last state (on a terminal)."""
        with self.lock:
            if self.tty and self.rows:
                self._draw()


def _pct(done: int, total: int) -> int:
    return 100 if total <= 0 else max(0, min(100, done * 100 // total))


class ProgressBar:
    """A task's progress (TaskInfo) as one row of :class:`ProgressBars`; silent when not on a terminal."""

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30) -> None:
        self.label = label
        self.bars = ProgressBars(stream, width=width, interval=0, lines=False)

    def __call__(self, info: TaskInfo) -> None:
        self.bars.update(self.label, info.state.value, info.progress, 100)


def run_task(task: Task, label: str, timeout: float | None = None) -> Any:
    """Wait for ``task`` with a progress bar; return its result."""
    return task.wait(timeout, on_progress=ProgressBar(label))
