"""cloud-init: a NoCloud config drive (ISO 9660 labelled ``cidata``) written into a small VDI."""

from __future__ import annotations

import io
import json
import uuid

from ...models import VMSpec
from . import _convert as cv
from ._session import XapiSession

__all__ = ["config_drive", "seed_files"]

DRIVE_BYTES = 4 * 1024 * 1024


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def seed_files(spec: VMSpec) -> dict[str, bytes]:
    ci = spec.cloud_init
    assert ci is not None
    hostname = ci.hostname or "".join(c if c.isalnum() or c == "-" else "-" for c in spec.name)[:63].strip("-") or "vm"
    meta = f"instance-id: {_quote(str(uuid.uuid4()))}\nlocal-hostname: {_quote(hostname)}\n"
    if ci.user_data is not None:
        user = ci.user_data
    else:
        lines = ["#cloud-config", f"hostname: {_quote(hostname)}"]
        if ci.username:
            lines += ["users:", f"  - name: {_quote(ci.username)}", '    sudo: "ALL=(ALL) NOPASSWD:ALL"']
            if ci.ssh_keys:
                lines += ["    ssh_authorized_keys:", *(f"      - {_quote(k)}" for k in ci.ssh_keys)]
            if ci.password:
                lines += ["    lock_passwd: false", f"    plain_text_passwd: {_quote(ci.password)}"]
        elif ci.ssh_keys:
            lines += ["ssh_authorized_keys:", *(f"  - {_quote(k)}" for k in ci.ssh_keys)]
        user = "\n".join(lines) + "\n"
    files = {"meta-data": meta.encode(), "user-data": user.encode()}
    if ci.network_config is not None:
        files["network-config"] = ci.network_config.encode()
    return files


def seed_iso(files: dict[str, bytes]) -> bytes:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for i, (name, data) in enumerate(sorted(files.items())):
        iso.add_fp(io.BytesIO(data), len(data), f"/FILE{i};1", rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def config_drive(s: XapiSession, sr: str, spec: VMSpec) -> str:
    """A VDI holding the seed ISO; the caller attaches it (and destroys it if the create fails)."""
    from ._storage import upload
    from ._vms import new_vdi

    image = seed_iso(seed_files(spec))
    size = max(DRIVE_BYTES, -(-len(image) // (1024 * 1024)) * 1024 * 1024)
    ref = new_vdi(s, sr, f"{spec.name} cloud-init", size, {cv.CONFIG_DRIVE_KEY: "true"})
    try:
        volume = cv.volume(ref, s.call("VDI.get_record", ref), "")
        upload(s, volume, io.BytesIO(image), len(image), lambda done, total: None)
    except BaseException:
        s.call("VDI.destroy", ref)
        raise
    return ref
