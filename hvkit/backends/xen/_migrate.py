"""Migration within a pool: VM.pool_migrate (live, shared storage); disks to another SR with
VDI.pool_migrate (running VM) or VDI.copy and a swapped VBD (halted VM)."""

from __future__ import annotations

from typing import Any

from ...driver import Rollback
from ...errors import NotFound
from ...models import VM, PowerState
from ._session import NULL, XapiSession
from ._vms import ref_of

__all__ = ["migrate"]


def _ref_by_name(s: XapiSession, cls: str, name: str) -> str:
    for ref, rec in s.call(f"{cls}.get_all_records").items():
        if name in (rec["uuid"], rec["name_label"]):
            return str(ref)
    raise NotFound(f"no {cls} {name!r}")


def migrate(s: XapiSession, vm: VM, host: str | None, pool: str | None, live: bool) -> str:
    ref = ref_of(s, vm)
    if pool is not None:
        move_disks(s, ref, _ref_by_name(s, "SR", pool), running=vm.power_state is PowerState.RUNNING)
    if host is not None:
        target = _ref_by_name(s, "host", host)
        if vm.power_state is PowerState.RUNNING:
            s.run("VM.pool_migrate", ref, target, {"live": "true" if live else "false"})
        else:
            s.call("VM.set_affinity", ref, target)  # a halted VM starts there next time
    return vm.id


def move_disks(s: XapiSession, vm: str, sr: str, *, running: bool) -> None:
    for vbd in s.call("VM.get_VBDs", vm):
        rec = s.call("VBD.get_record", vbd)
        vdi = rec["VDI"]
        if rec["type"] != "Disk" or vdi == NULL or s.call("VDI.get_SR", vdi) == sr:
            continue
        if running:
            s.run("VDI.pool_migrate", vdi, sr, {})
            continue
        _swap_copy(s, vbd, rec, sr)


def _swap_copy(s: XapiSession, vbd: str, rec: dict[str, Any], sr: str) -> None:
    """A halted VM's disk: copy the VDI to ``sr``, point a new VBD at the copy, then drop the old VDI."""
    vdi = str(rec["VDI"])
    keep = ("VM", "userdevice", "bootable", "mode", "type", "empty", "other_config")
    record = {k: rec[k] for k in keep} | {"qos_algorithm_type": "", "qos_algorithm_params": {}}
    with Rollback() as undo:
        copy = str(s.run("VDI.copy", vdi, sr, NULL, NULL))
        undo.push(lambda: s.call("VDI.destroy", copy), f"destroy VDI {copy}")
        s.call("VDI.set_name_label", copy, s.call("VDI.get_name_label", vdi))
        s.call("VBD.destroy", vbd)
        undo.push(lambda: s.call("VBD.create", {**record, "VDI": vdi}), "reattach the old VDI")
        s.call("VBD.create", {**record, "VDI": copy})
    s.call("VDI.destroy", vdi)
