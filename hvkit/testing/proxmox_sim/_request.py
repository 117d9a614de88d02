"""A request to the simulated PVE API, and the route table its handlers register in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .schema import parse_bool
from .state import Cluster, VMState
from .tasks import TaskContext

__all__ = ["ROUTES", "Handler", "Request", "route"]


class Request:
    def __init__(
        self, cluster: Cluster, user: str, params: dict[str, str], files: dict[str, Path] | None = None
    ) -> None:
        self.c = cluster
        self.user = user
        self.p = params
        self.files = files or {}

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.p.get(name)
        return default if value is None else bool(parse_bool(value))

    @property
    def node(self) -> str:
        return self.p["node"]

    @property
    def vmid(self) -> int:
        return int(self.p["vmid"])

    def vm(self) -> VMState:
        return self.c.vm(self.node, self.vmid)

    def task(self, kind: str, ident: str, work: Callable[[TaskContext], None]) -> str:
        return self.c.runner.start(self.node, kind, ident, self.user, work).upid


Handler = Callable[[Request], Any]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(path: str, method: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES[(path, method)] = fn
        return fn

    return deco
