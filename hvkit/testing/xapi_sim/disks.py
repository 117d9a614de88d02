"""Semantics of disks and NICs: VDIs on SRs (space, SR_FULL), copies, clones, snapshots, VBDs and VIFs."""

from __future__ import annotations

import random
import re
from typing import Any

from .api import API, handler
from .model import NULL, Failure, coerce, model, parse_type
from .pool import now

__all__ = ["destroy_vdi", "duplicate_vdi", "new_vdi", "random_mac"]

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _vm(api: API, ref: str) -> dict[str, Any]:
    return api.store.get("VM", ref)


def duplicate_vdi(api: API, vdi: str, how: str, sr: str = NULL) -> str:
    s = api.store
    rec = s.get("VDI", vdi)
    target = sr if sr != NULL else rec["SR"]
    fields = {k: rec[k] for k in ("name_label", "name_description", "virtual_size", "type", "sharable", "read_only")}
    if how == "snapshot":
        fields.update(is_a_snapshot=True, snapshot_of=vdi, snapshot_time=now())
    elif how == "clone":
        fields["sm_config"] = {"vhd-parent": rec["uuid"]}
    new = new_vdi(api, target, fields)
    api.pool.copy_content(vdi, new)
    return new


# -- disks --------------------------------------------------------------------------------------------------------
def new_vdi(api: API, sr: str, fields: dict[str, Any]) -> str:
    size = int(fields.get("virtual_size", 0))
    if size < 0:
        raise Failure("INVALID_VALUE", "virtual_size", size)
    free = api.pool.sr_free(sr)
    if size > free:
        raise Failure("SR_FULL", size, free)
    fields = {"type": "user", "allowed_operations": ["clone", "copy", "destroy", "resize", "snapshot"], **fields}
    vdi = api.store.new("VDI", {**fields, "SR": sr, "physical_utilisation": 0, "location": ""})
    rec = api.store.get("VDI", vdi)
    api.store.set("VDI", vdi, "location", rec["uuid"])
    api.pool.account(sr, size)
    return vdi


def destroy_vdi(api: API, vdi: str) -> None:
    s = api.store
    rec = s.get("VDI", vdi)
    for vbd in list(rec["VBDs"]):
        if s.get("VBD", vbd)["currently_attached"]:
            raise Failure("VDI_IN_USE", vdi, "destroy")
    for vbd in list(rec["VBDs"]):
        s.destroy("VBD", vbd)
    api.pool.remove_content(vdi)
    api.pool.account(rec["SR"], -int(rec["virtual_size"]))
    s.destroy("VDI", vdi)


@handler("VDI.create")
def _vdi_create(api: API, session: str, args: dict[str, Any]) -> str:
    sr = str(args.get("SR", NULL))
    if not api.store.exists("SR", sr):
        raise Failure("HANDLE_INVALID", "SR", sr)
    spec = model()["classes"]["VDI"]["fields"]
    skip = ("SR", "uuid", "VBDs", "snapshots", "snapshot_of", "location")
    fields = {k: coerce(parse_type(spec[k][0]), v, f"VDI.{k}") for k, v in args.items() if k in spec and k not in skip}
    return new_vdi(api, sr, fields)


@handler("VDI.destroy")
def _vdi_destroy(api: API, session: str, vdi: str) -> None:
    destroy_vdi(api, vdi)


@handler("VDI.copy")
def _vdi_copy(api: API, session: str, vdi: str, sr: str, base: str, into: str) -> str:
    if into != NULL:
        api.pool.copy_content(vdi, into)
        return into
    return duplicate_vdi(api, vdi, "copy", sr)


@handler("VDI.clone")
def _vdi_clone(api: API, session: str, vdi: str, driver_params: dict[str, str]) -> str:
    return duplicate_vdi(api, vdi, "clone")


@handler("VDI.snapshot")
def _vdi_snapshot(api: API, session: str, vdi: str, driver_params: dict[str, str]) -> str:
    return duplicate_vdi(api, vdi, "snapshot")


@handler("VDI.resize")
def _vdi_resize(api: API, session: str, vdi: str, size: int) -> None:
    rec = api.store.get("VDI", vdi)
    grow = size - int(rec["virtual_size"])
    if grow < 0:
        raise Failure("VDI_TOO_SMALL", vdi, size)
    if grow > api.pool.sr_free(rec["SR"]):
        raise Failure("SR_FULL", size, api.pool.sr_free(rec["SR"]))
    api.pool.account(rec["SR"], grow)
    api.store.set("VDI", vdi, "virtual_size", size)


@handler("VDI.pool_migrate")
def _vdi_pool_migrate(api: API, session: str, vdi: str, sr: str, options: dict[str, str]) -> str:
    s = api.store
    attached = [b for b in s.get("VDI", vdi)["VBDs"] if s.get("VBD", b)["currently_attached"]]
    if not attached:
        raise Failure("VDI_NEEDS_VM_FOR_MIGRATE", vdi)
    new = duplicate_vdi(api, vdi, "copy", sr)
    for vbd in list(s.get("VDI", vdi)["VBDs"]):
        s.set("VBD", vbd, "VDI", new)
    s.update("VDI", new, name_label=s.get("VDI", vdi)["name_label"])
    destroy_vdi(api, vdi)
    return new


# -- devices --------------------------------------------------------------------------------------------------------
@handler("VBD.create")
def _vbd_create(api: API, session: str, args: dict[str, Any]) -> str:
    from .api import _create as generic

    vm = str(args.get("VM", NULL))
    rec = _vm(api, vm)
    used = {api.store.get("VBD", b)["userdevice"] for b in rec["VBDs"]}
    device = str(args.get("userdevice", "autodetect"))
    if device == "autodetect":
        device = str(next(i for i in range(64) if str(i) not in used))
    elif device in used:
        raise Failure("DEVICE_ALREADY_EXISTS", device)
    return generic(api.store, "VBD", {**args, "userdevice": device, "currently_attached": False})


@handler("VIF.create")
def _vif_create(api: API, session: str, args: dict[str, Any]) -> str:
    from .api import _create as generic

    mac = str(args.get("MAC", ""))
    if mac and not _MAC.match(mac):
        raise Failure("MAC_INVALID", mac)
    rec = _vm(api, str(args.get("VM", NULL)))
    device = str(args.get("device", "0"))
    if any(api.store.get("VIF", v)["device"] == device for v in rec["VIFs"]):
        raise Failure("DEVICE_ALREADY_EXISTS", device)
    return generic(api.store, "VIF", {**args, "MAC": mac.lower() or random_mac(), "currently_attached": False})


def random_mac() -> str:
    octets = [random.randrange(256) for _ in range(5)]
    return ":".join(f"{b:02x}" for b in [0x02 | (octets[0] & 0xFC), *octets[1:], random.randrange(256)])
