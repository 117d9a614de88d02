"""The migration journal: every step recorded before and after it runs.

A journal is a directory: ``journal.jsonl`` (one JSON record a line, appended; every record but a
step's ``done`` is fsynced before the step acts, and a ``done`` reaches the disk with the next) and
``staging/`` (disk images made for the transfer). The first record holds the plan; each later one a
step's ``begin``, ``done`` or ``undone`` with what is needed to resume the step or to undo it
(the names of target objects are fixed by the plan, so a step killed between creating something and
recording it can still be found). Journals hold no secrets: URLs are written without passwords.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidSpec, NotFound

__all__ = ["Journal", "default_root"]

FORMAT = "hvkit-migration-journal-1"


def default_root() -> Path:
    """Where journals go by default: ``$HVKIT_MIGRATION_DIR`` or ``$XDG_STATE_HOME/hvkit/migrations``."""
    explicit = os.environ.get("HVKIT_MIGRATION_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(state) / "hvkit" / "migrations"


class Journal:
    """Append-only step records of one migration."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / "journal.jsonl"
        self.staging = directory / "staging"
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []

    # -- create / open ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, plan_data: dict[str, Any], root: Path | None = None, directory: Path | None = None) -> Journal:
        if directory is None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(plan_data.get("name", "vm")))[:40]
            directory = (root or default_root()) / f"{safe}-{stamp}-{uuid.uuid4().hex[:6]}"
        if (directory / "journal.jsonl").exists():
            raise InvalidSpec(f"{directory} holds a migration journal already; resume or roll it back")
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        journal = cls(directory)
        journal.staging.mkdir(exist_ok=True)
        journal.append({"kind": "plan", "format": FORMAT, "plan": plan_data})
        journal.append({"kind": "status", "status": "started"})
        return journal

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> Journal:
        path = Path(directory)
        if path.name == "journal.jsonl":
            path = path.parent
        journal = cls(path)
        if not journal.path.is_file():
            raise NotFound(f"no migration journal in {path}")
        for n, line in enumerate(journal.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                journal.records.append(json.loads(line))
            except json.JSONDecodeError:
                # a record cut short by a crash can only be the last one: its step did not finish
                if n != len(journal.path.read_text(encoding="utf-8").splitlines()):
                    raise InvalidSpec(f"{journal.path} line {n} is not valid JSON: the journal is damaged") from None
        if not journal.records or journal.records[0].get("format") != FORMAT:
            raise InvalidSpec(f"{journal.path} is not an hvkit migration journal")
        return journal

    # -- write -------------------------------------------------------------------------------------------
    def append(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """Add ``record``; ``durable``: on disk before this returns (fsync), else with the next durable one."""
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), **record}
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            self.records.append(record)

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
