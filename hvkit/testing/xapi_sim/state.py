"""The simulated pool's objects: records of every class in the model, their links, events and sessions."""

from __future__ import annotations

import builtins
import copy
import threading
import time
import uuid as uuidlib
from typing import Any

from .model import NULL, Failure, default_for, model

__all__ = ["RELATIONS", "Store", "new_ref"]

# (class, ref field) -> (class it points to, set field there listing the pointers): kept both ways
RELATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("VBD", "VM"): ("VM", "VBDs"),
    ("VBD", "VDI"): ("VDI", "VBDs"),
    ("VIF", "VM"): ("VM", "VIFs"),
    ("VIF", "network"): ("network", "VIFs"),
    ("VDI", "SR"): ("SR", "VDIs"),
    ("VDI", "snapshot_of"): ("VDI", "snapshots"),
    ("PBD", "SR"): ("SR", "PBDs"),
    ("PBD", "host"): ("host", "PBDs"),
    ("PIF", "host"): ("host", "PIFs"),
    ("PIF", "network"): ("network", "PIFs"),
    ("console", "VM"): ("VM", "consoles"),
    ("VM", "snapshot_of"): ("VM", "snapshots"),
    ("VM", "parent"): ("VM", "children"),
    ("VM", "resident_on"): ("host", "resident_VMs"),
    ("host_cpu", "host"): ("host", "host_CPUs"),
    ("task", "subtask_of"): ("task", "subtasks"),
}
_BACKLINKS: dict[str, list[tuple[str, str, str]]] = {}  # class -> [(field, target class, set field)]
for (_cls, _field), (_target, _set) in RELATIONS.items():
    _BACKLINKS.setdefault(_cls, []).append((_field, _target, _set))


def new_ref() -> str:
    return f"OpaqueRef:{uuidlib.uuid4()}"


class Store:
    """Every object by class and reference; one lock; an event log that ``event.from`` reads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in model()["classes"]}
        self.by_uuid: dict[str, dict[str, str]] = {name: {} for name in model()["classes"]}
        self.events: list[tuple[int, str, str, str, dict[str, Any] | None]] = []  # id, class, op, ref, last
        self.event_id = 0
        self._defaults: dict[str, dict[str, Any]] = {}

    # -- records -----------------------------------------------------------------------------------
    def defaults(self, cls: str) -> dict[str, Any]:
        found = self._defaults.get(cls)
        if found is None:
            fields = model()["classes"][cls]["fields"]
            found = {name: default_for(t, d) for name, (t, _q, d) in fields.items()}
            self._defaults[cls] = found
        return copy.deepcopy(found)

    def new(self, cls: str, fields: dict[str, Any], ref: str | None = None) -> str:
        """Create an object; fields not given take the model's defaults. Links are kept both ways."""
        with self.lock:
            record = self.defaults(cls)
            record.update(fields)
            record.setdefault("uuid", "")
            if not record["uuid"]:
                record["uuid"] = str(uuidlib.uuid4())
            ref = ref or new_ref()
            self.objects[cls][ref] = record
            self.by_uuid[cls][record["uuid"]] = ref
            for field, target, set_field in _BACKLINKS.get(cls, ()):
                self._link(target, record.get(field, NULL), set_field, ref)
            self._event(cls, "add", ref)
            return ref

    def get(self, cls: str, ref: str) -> dict[str, Any]:
        record = self.objects[cls].get(ref)
        if record is None:
            raise Failure("HANDLE_INVALID", cls, ref)
        return record

    def exists(self, cls: str, ref: str) -> bool:
        return ref in self.objects[cls]

    def set(self, cls: str, ref: str, field: str, value: Any) -> None:
        with self.lock:
            record = self.get(cls, ref)
            old = record.get(field)
            rel = RELATIONS.get((cls, field))
            if rel is not None and old != value:
                self._unlink(rel[0], str(old), rel[1], ref)
                self._link(rel[0], value, rel[1], ref)
            record[field] = value
            self._event(cls, "mod", ref)

    def update(self, cls: str, ref: str, **fields: Any) -> None:
        with self.lock:
            for field, value in fields.items():
                self.set(cls, ref, field, value)

    def destroy(self, cls: str, ref: str) -> None:
        with self.lock:
            record = self.get(cls, ref)
            for field, target, set_field in _BACKLINKS.get(cls, ()):
                self._unlink(target, record.get(field, NULL), set_field, ref)
            for (child_cls, child_field), (target, _set) in RELATIONS.items():  # pointers to it become NULL
                if target == cls:
                    for child_ref in list(record.get(_set, [])):
                        child = self.objects[child_cls].get(child_ref)
                        if child is not None and child.get(child_field) == ref:
                            child[child_field] = NULL
            del self.objects[cls][ref]
            self.by_uuid[cls].pop(record["uuid"], None)
            self._event(cls, "del", ref, record)

    def _link(self, cls: str, ref: str, set_field: str, member: str) -> None:
        target = self.objects[cls].get(ref) if ref and ref != NULL else None
        if target is not None and member not in target.setdefault(set_field, []):
            target[set_field].append(member)
            self._event(cls, "mod", ref)

    def _unlink(self, cls: str, ref: str, set_field: str, member: str) -> None:
        target = self.objects[cls].get(ref) if ref and ref != NULL else None
        if target is not None and member in target.get(set_field, []):
            target[set_field].remove(member)
            self._event(cls, "mod", ref)

    def find(self, cls: str, **match: Any) -> list[str]:
        with self.lock:
            return [r for r, rec in self.objects[cls].items() if all(rec.get(k) == v for k, v in match.items())]

    # -- events --------------------------------------------------------------------------------------
    def _event(self, cls: str, op: str, ref: str, last: dict[str, Any] | None = None) -> None:
        self.event_id += 1
        self.events.append((self.event_id, cls, op, ref, copy.deepcopy(last) if last is not None else None))
        if len(self.events) > 200_000:
            del self.events[:100_000]
        self.changed.notify_all()

    def events_since(self, classes: builtins.set[str], token: int, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """Events of ``classes`` ('*' for all) after ``token``, waiting up to ``timeout`` for the first."""
        deadline = time.monotonic() + timeout
        with self.lock:
            if self.events and token < self.events[0][0] - 1:
                raise Failure("EVENTS_LOST")
            while True:
                found = [e for e in self.events if e[0] > token and ("*" in classes or e[1].lower() in classes)]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    break
                self.changed.wait(remaining)
            latest: dict[tuple[str, str], tuple[int, str, dict[str, Any] | None]] = {}
            for event_id, cls, op, ref, last in found:
                earlier = latest.get((cls, ref))
                if earlier is not None and earlier[1] == "add" and op == "mod":
                    op = "add"  # made since the token: reported as added, with its current fields
                latest[(cls, ref)] = (event_id, op, last)
            out = []
            for (cls, ref), (event_id, op, last) in sorted(latest.items(), key=lambda kv: kv[1][0]):
                snapshot = last if op == "del" else copy.deepcopy(self.objects[cls].get(ref))
                if snapshot is None:
                    op, snapshot = "del", {}
                out.append(
                    {
                        "id": str(event_id),
                        "timestamp": f"{time.time():.6f}",
                        "class": cls.lower(),  # XAPI names classes in lower case in events
                        "operation": op,
                        "ref": ref,
                        "snapshot": snapshot,
                    }
                )
            return out, self.event_id
