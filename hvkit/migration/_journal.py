"""The migration journal: every step recorded before and after it runs.

A journal is a directory: ``journal.jsonl`` (one JSON record a line, appended; every record but a
step's ``done`` is fsynced before the step acts, and a ``done`` reaches the disk with the next) and
``staging/`` (disk images made for the transfer). The first record holds the plan; each later one a
step's ``begin``, ``done`` or ``undone`` with what is needed to resume the step or to undo it
(the names of target objects are fixed by the plan, and what an import will write on the target is
recorded before it is written, so a step killed between creating something and recording it can still
be found). Journals hold no secrets: URLs are written without passwords.

Crash safety: a record is one ``write`` of one line. A crash mid-write leaves a torn last line (no
newline); opening the journal for a resume or rollback cuts it off (a whole record that only lacks its
newline is kept and given one), and every append first makes sure the file ends with a newline, so a
record never lands on the end of a torn one. A process works on a journal under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidSpec, InvalidState, NotFound

__all__ = ["Journal", "default_root"]

FORMAT = "hvkit-migration-journal-1"


def default_root() -> Path:
    """Where journals go by default: ``$HVKIT_MIGRATION_DIR`` or ``$XDG_STATE_HOME/hvkit/migrations``."""
    explicit = os.environ.get("HVKIT_MIGRATION_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(state) / "hvkit" / "migrations"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(text: str) -> dict[str, Any] | None:
    """``text`` as a journal record, or None when it is not one whole JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "kind" in value else None


def _salvage(line: str) -> dict[str, Any] | None:
    """The whole record at the end of a line that starts with a torn one (as releases before the newline
    guard wrote after a crash): JSON escapes quotes inside strings, so every ``{"`` starts an object."""
    for m in re.finditer(r'\{"', line):
        if m.start() > 0 and (rec := _record(line[m.start() :])) is not None:
            return rec
    return None


class Journal:
    """Append-only step records of one migration."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "journal.jsonl"
        self.staging = directory / "staging"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self.records: list[dict[str, Any]] = []
        self.repairs: list[str] = []  # what open() found torn and cut off or salvaged

    # -- create / open ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, plan_data: dict[str, Any], root: Path | None = None, directory: Path | None = None) -> Journal:
        if directory is None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(plan_data.get("name", "vm")))[:40]
            directory = (root or default_root()) / f"{safe}-{stamp}-{uuid.uuid4().hex[:6]}"
        existing = directory / "journal.jsonl"
        # a file without one whole line is a journal whose plan record a crash cut short: nothing began
        if existing.exists() and b"\n" in existing.read_bytes():
            raise InvalidSpec(f"{directory} holds a migration journal already; resume or roll it back")
        existing.unlink(missing_ok=True)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        journal = cls(directory)
        journal.staging.mkdir(exist_ok=True)
        journal.append({"kind": "plan", "format": FORMAT, "plan": plan_data})
        _fsync_dir(directory)  # the journal file's name is on disk too
        journal.append({"kind": "status", "status": "started"})
        return journal

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, repair: bool = True, lock: bool = False) -> Journal:
        """Read a journal. A torn last record (a crash mid-write) is left out, and with ``repair`` (the
        default) cut off the file, so the next record starts on a line of its own; ``repair=False``
        changes nothing (to look at a journal another process works on). ``lock``: take the journal for
        this process first (:meth:`acquire`), as a resume or rollback does."""
        path = Path(directory)
        if path.name == "journal.jsonl":
            path = path.parent
        journal = cls(path)
        if not journal.path.is_file():
            raise NotFound(f"no migration journal in {path}")
        if lock:
            journal.acquire()
        try:
            journal._read(repair)
        except BaseException:
            journal.release()
            raise
        return journal

    def _read(self, repair: bool) -> None:
        data = self.path.read_bytes()
        body, sep, tail = data.rpartition(b"\n")
        for n, raw in enumerate(body.split(b"\n") if body else [], 1):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            rec = _record(line)
            if rec is None and (rec := _salvage(line)) is not None:
                self.repairs.append(f"line {n}: a torn record before a whole one was dropped")
            if rec is None:
                raise InvalidSpec(f"{self.path} line {n} is not valid JSON: the journal is damaged")
            self.records.append(rec)
        keep = len(body) + len(sep)  # the bytes up to and with the last newline
        if tail.strip(b"\x00 \t\r"):
            whole = _record(tail.decode("utf-8", errors="replace"))
            if whole is not None:  # a whole record whose newline did not reach the disk
                self.records.append(whole)
                self.repairs.append("the last record lacked its newline; it was given one")
            else:
                self.repairs.append(f"a torn last record ({len(tail)} bytes) was cut off")
            if repair:  # keep a whole record and give it its newline; cut a torn one off
                self._cut(keep + len(tail.rstrip()) if whole is not None else keep, newline=whole is not None)
        elif tail and repair:
            self._cut(keep, newline=False)  # zero bytes a crash left past the last record
        if not self.records or self.records[0].get("format") != FORMAT:
            raise InvalidSpec(f"{self.path} is not an hvkit migration journal")

    def _cut(self, size: int, *, newline: bool) -> None:
        """Truncate the file to ``size`` bytes (the end of its last whole line), then add a newline if asked."""
        with self._lock, self.path.open("r+b") as f:
            f.truncate(size)
            if newline:
                f.seek(size)
                f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())

    # -- one writer ---------------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the journal for this process (an exclusive lock, released when it exits or :meth:`release`)."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidState(f"another process is working on the migration in {self.dir}") from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- write -------------------------------------------------------------------------------------------
    def append(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """Add ``record``; ``durable``: on disk before this returns (fsync), else with the next durable one."""
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), **record}
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                self._guard_newline(fd)
                written = os.write(fd, line)
                if written != len(line):  # a short write (disk full): cut it off again, keep the file whole
                    os.ftruncate(fd, os.fstat(fd).st_size - written)
                    raise OSError(f"the journal {self.path} could not take a record ({written} of {len(line)} bytes)")
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self.records.append(record)

    @staticmethod
    def _guard_newline(fd: int) -> None:
        """Cut a torn last line (no newline) off before appending: a record never lands on the end of one."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        os.ftruncate(fd, os.pread(fd, size, 0).rfind(b"\n") + 1)  # journals are small: read it whole

    def begin(self, step: str, **data: Any) -> None:
        self.append({"kind": "step", "step": step, "state": "begin", **data})

    def done(self, step: str, **data: Any) -> None:
        # not fsynced: a "done" lost with the machine reads as a step begun and acted on, which resume and
        # rollback handle (as after a kill between acting and recording); the next begin or status syncs it
        self.append({"kind": "step", "step": step, "state": "done", **data}, durable=False)

    def undone(self, step: str, **data: Any) -> None:
        self.append({"kind": "step", "step": step, "state": "undone", **data})

    def status(self, status: str, **data: Any) -> None:
        self.append({"kind": "status", "status": status, **data})

    # -- read --------------------------------------------------------------------------------------------
    @property
    def plan(self) -> dict[str, Any]:
        data: dict[str, Any] = self.records[0]["plan"]
        return data

    @property
    def current_status(self) -> str:
        for rec in reversed(self.records):
            if rec.get("kind") == "status":
                return str(rec["status"])
        return "started"

    def steps(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            records = list(self.records)
        yield from (r for r in records if r.get("kind") == "step")

    def state(self, step: str) -> tuple[str | None, dict[str, Any]]:
        """The step's last state (None: never begun) and the data of its records merged in order."""
        last: str | None = None
        data: dict[str, Any] = {}
        for rec in self.steps():
            if rec["step"] != step:
                continue
            if rec["state"] == "undone":
                last, data = "undone", {}
                continue
            last = rec["state"]
            data.update({k: v for k, v in rec.items() if k not in ("kind", "step", "state", "time")})
        return last, data

    def is_done(self, step: str) -> bool:
        return self.state(step)[0] == "done"

    def begun(self) -> list[str]:
        """Steps begun and not undone, in the order they were first begun."""
        order: list[str] = []
        for rec in self.steps():
            if rec["step"] not in order:
                order.append(rec["step"])
        return [s for s in order if self.state(s)[0] in ("begin", "done")]
