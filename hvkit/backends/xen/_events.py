"""Lifecycle events: ``event.from`` on the VM class, on a session of its own, in a thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ...driver import ConnectOptions, Event
from ...errors import HvkitError
from . import _convert as cv
from ._session import XapiSession

__all__ = ["subscribe"]

log = logging.getLogger("hvkit.xen")
POLL_SECONDS = 1.0  # how long one event.from waits; also how soon a stopped watcher ends
_CHANGES = {
    ("Halted", "Running"): "started",
    ("Suspended", "Running"): "started",
    ("Running", "Paused"): "paused",
    ("Paused", "Running"): "resumed",
    ("Running", "Halted"): "stopped",
    ("Paused", "Halted"): "stopped",
    ("Suspended", "Halted"): "stopped",
    ("Running", "Suspended"): "suspended",
    ("Paused", "Suspended"): "suspended",
}


def _kind(op: str, before: str | None, after: str) -> str | None:
    if op == "add":
        return "defined"
    if op == "del":
        return "undefined"
    if before is None or before == after:
        return None
    return _CHANGES.get((before, after), after.lower())


def subscribe(options: ConnectOptions, callback: Callable[[Event], None]) -> Callable[[], None]:
    """Watch VMs until the returned function is called; ``callback`` gets one dict per lifecycle change."""
    session = XapiSession(options)
    try:
        session.connect()
        first = session.call("event.from", ["vm"], "", 0.0)
    except BaseException:
        session.close()
        raise
    stop = threading.Event()
    states: dict[str, str] = {
        e["ref"]: e["snapshot"]["power_state"] for e in first["events"] if cv.is_guest(e["snapshot"])
    }

    def run(token: str) -> None:
        try:
            while not stop.is_set():
                answer = session.call("event.from", ["vm"], token, POLL_SECONDS)
                token = str(answer["token"])
                for event in answer["events"]:
                    _deliver(event, states, callback)
        except HvkitError as exc:
            if not stop.is_set():
                log.error("the XAPI event watcher stopped: %s", exc)
        finally:
            session.close()

    thread = threading.Thread(target=run, args=(str(first["token"]),), daemon=True, name="hvkit-xen-events")
    thread.start()

    def cancel() -> None:
        stop.set()
        thread.join(POLL_SECONDS + options.timeout)

    return cancel


def _deliver(event: dict[str, Any], states: dict[str, str], callback: Callable[[Event], None]) -> None:
    record = event.get("snapshot") or {}
    ref, op = event["ref"], event["operation"]
    if op != "del" and not cv.is_guest(record):
        return
    after = record.get("power_state", "")
    before = states.pop(ref, None) if op == "del" else states.get(ref)
    if op != "del":
        states[ref] = after
    kind = _kind(op, before, after)
    if kind is None:
        return
    try:
        callback({"vm": record.get("uuid", ""), "name": record.get("name_label", ""), "event": kind, "detail": after})
    except Exception:
        log.exception("event callback failed")
