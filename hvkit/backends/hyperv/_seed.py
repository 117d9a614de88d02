"""First boot configuration for Linux guests: a cloud-init NoCloud seed ISO, attached as a DVD.

cloud-init's NoCloud data source reads a volume labelled ``cidata`` holding ``meta-data``, ``user-data``
and, when given, ``network-config``; the ISO is built here with pycdlib and written next to the VM's
first disk by the create script.
"""

from __future__ import annotations

import base64
import io
import json
import uuid

from ...models import CloudInit

__all__ = ["seed_iso_base64", "seed_payload"]


def _yaml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def seed_payload(vm_name: str, ci: CloudInit) -> dict[str, bytes]:
    """The NoCloud files: the user's own user-data, or a #cloud-config built from the simple fields."""
    host = ci.hostname or "".join(ch if ch.isascii() and (ch.isalnum() or ch == "-") else "-" for ch in vm_name)
    host = host.strip("-")[:63] or "vm"
    meta = f"instance-id: {_yaml_string(str(uuid.uuid4()))}\nlocal-hostname: {_yaml_string(host)}\n"
    if ci.user_data is not None:
        user = ci.user_data
    else:
        config = ["#cloud-config", f"hostname: {_yaml_string(host)}"]
        if ci.username:
            config += [
                "users:",
                f"  - name: {_yaml_string(ci.username)}",
                '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
                "    shell: /bin/bash",
            ]
            if ci.ssh_keys:
                config += ["    ssh_authorized_keys:", *(f"      - {_yaml_string(k)}" for k in ci.ssh_keys)]
            if ci.password:
                config += ["    lock_passwd: false", f"    plain_text_passwd: {_yaml_string(ci.password)}"]
        elif ci.ssh_keys:
            config += ["ssh_authorized_keys:", *(f"  - {_yaml_string(k)}" for k in ci.ssh_keys)]
        if ci.password:
            config.append("ssh_pwauth: true")
        user = "\n".join(config) + "\n"
    files = {"meta-data": meta.encode(), "user-data": user.encode()}
    if ci.network_config is not None:
        files["network-config"] = ci.network_config.encode()
    return files


def seed_iso_base64(files: dict[str, bytes]) -> str:
    """An ISO 9660 image labelled ``cidata`` (Joliet and Rock Ridge names) holding ``files``, as base64."""
    import pycdlib  # type: ignore[import-untyped]

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for number, (name, data) in enumerate(sorted(files.items())):
        iso.add_fp(io.BytesIO(data), len(data), f"/F{number};1", rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return base64.b64encode(out.getvalue()).decode("ascii")
