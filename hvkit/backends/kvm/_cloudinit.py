"""A cloud-init NoCloud seed: user-data, meta-data and network-config on a small ISO, built with pycdlib."""

from __future__ import annotations

import io
import json
import uuid

import pycdlib

from ...models import CloudInit

__all__ = ["seed_files", "seed_iso"]


def _quote(text: str) -> str:
    """A YAML scalar: JSON strings are valid YAML and escape everything that needs it."""
    return json.dumps(text, ensure_ascii=False)


def seed_files(vm_name: str, ci: CloudInit, instance_id: str | None = None) -> dict[str, bytes]:
    """The NoCloud files for ``ci``: the user's user-data as given, or one built from the simple fields."""
    hostname = ci.hostname or "".join(c if c.isalnum() or c == "-" else "-" for c in vm_name)[:63].strip("-") or "vm"
    meta = f"instance-id: {_quote(instance_id or str(uuid.uuid4()))}\nlocal-hostname: {_quote(hostname)}\n"
    if ci.user_data is not None:
        user = ci.user_data
    else:
        lines = ["#cloud-config", f"hostname: {_quote(hostname)}"]
        if ci.username:
            lines += [
                "users:",
                f"  - name: {_quote(ci.username)}",
                "    shell: /bin/bash",
                '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
            ]
            if ci.ssh_keys:
                lines.append("    ssh_authorized_keys:")
                lines += [f"      - {_quote(k)}" for k in ci.ssh_keys]
            if ci.password:
                lines += ["    lock_passwd: false", f"    plain_text_passwd: {_quote(ci.password)}"]
        elif ci.ssh_keys:
            lines.append("ssh_authorized_keys:")
            lines += [f"  - {_quote(k)}" for k in ci.ssh_keys]
        if ci.password:
            lines.append("ssh_pwauth: true")
        user = "\n".join(lines) + "\n"
    files = {"meta-data": meta.encode(), "user-data": user.encode()}
    if ci.network_config is not None:
        files["network-config"] = ci.network_config.encode()
    return files


def seed_iso(files: dict[str, bytes]) -> bytes:
    """An ISO 9660 image (Joliet and Rock Ridge names) labelled ``cidata`` holding ``files``."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for i, (name, data) in enumerate(sorted(files.items())):
        iso.add_fp(
            io.BytesIO(data),
            len(data),
            f"/FILE{i};1",
            rr_name=name,
            joliet_path=f"/{name}",
        )
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()
