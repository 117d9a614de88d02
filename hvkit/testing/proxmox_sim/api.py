"""The API methods the simulator serves: one function per (path, method) of the PVE schema."""

from __future__ import annotations

from . import _api_clone, _api_ha, _api_nodes, _api_qemu, _api_snapshots, _api_storage  # noqa: F401 - routes
from ._request import ROUTES, Request

__all__ = ["ROUTES", "Request"]
