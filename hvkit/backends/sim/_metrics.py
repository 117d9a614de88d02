"""Sim metrics from the load model, and lifecycle events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ...driver import Event
from ...models import (
    VM,
    Host,
    HostMetrics,
    PowerState,
    VMMetrics,
)
from ._session import CHUNK, SimSession, epoch_now


def vm_metrics(session: SimSession, vms: list[VM]) -> list[VMMetrics]:
    session.enter("vm_metrics")
    now = dt.datetime.now(dt.UTC)
    out = []
    with session.world.lock:
        for vm in vms:
            rec = session.vm(vm.id)
            running = rec["state"] == PowerState.RUNNING.value
            seconds = rec["run_seconds"] + (epoch_now() - rec["state_since"] if running else 0.0)
            busy = seconds * rec["load"]
            out.append(
                VMMetrics(
                    rec["id"],
                    now,
                    int(busy * rec["cpus"] * 1e9),
                    rec["load"] if running else 0.0,
                    int(rec["memory_mib"] * (0.3 + 0.6 * rec["load"])) if running else 0,
                    int(busy * 2 * CHUNK),
                    int(busy * CHUNK),
                    int(busy * 4 * CHUNK),
                    int(busy * CHUNK),
                )
            )
    return out


def host_metrics(session: SimSession, hosts: list[Host]) -> list[HostMetrics]:
    session.enter("host_metrics")
    now = dt.datetime.now(dt.UTC)
    with session.world.lock:
        usage = session.host_usage()
        return [HostMetrics(h.id, now, usage[h.id][0], usage[h.id][1]) for h in hosts]


def subscribe(session: SimSession, callback: Callable[[Event], None]) -> Callable[[], None]:
    session.world.listeners.append(callback)

    def unsubscribe() -> None:
        if callback in session.world.listeners:
            session.world.listeners.remove(callback)

    return unsubscribe
