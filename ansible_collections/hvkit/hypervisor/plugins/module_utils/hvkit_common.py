# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the hvkit.hypervisor modules: connection options, error translation, serialisation."""

from __future__ import annotations

import re
import traceback

from ansible.module_utils.basic import missing_required_lib

HVKIT_IMPORT_ERROR = None
try:
    import hvkit
    from hvkit import errors as hvkit_errors
except ImportError:  # reported by require_hvkit() as a clear failure
    hvkit = None
    hvkit_errors = None
    HVKIT_IMPORT_ERROR = traceback.format_exc()

# what every module takes to reach a hypervisor; hvkit fills in profiles and HVKIT_* environment variables
CONNECTION_SPEC = dict(
    url=dict(type="str"),
    profile=dict(type="str"),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    token=dict(type="str", no_log=True),
    verify_tls=dict(type="bool"),
    ca_file=dict(type="path"),
    connect_timeout=dict(type="float"),
    backend_options=dict(type="dict", default={}),
)

ERROR_KINDS = (
    "AuthenticationError",
    "ConnectionError",
    "NotFound",
    "AlreadyExists",
    "InvalidSpec",
    "InvalidState",
    "Conflict",
    "Timeout",
    "Unsupported",
    "BackendError",
)


def argument_spec(**module_options):
    """The connection options plus the module's own (a module option of the same name wins)."""
    spec = {k: dict(v) for k, v in CONNECTION_SPEC.items()}
    spec.update(module_options)
    return spec


def require_hvkit(module):
    """Fail with the install hint when the hvkit library is missing on the managed host."""
    if hvkit is None:
        module.fail_json(msg=missing_required_lib("hvkit"), exception=HVKIT_IMPORT_ERROR)


def connection_kwargs(params):
    """hvkit.connect() keyword arguments from module parameters (or a source/target suboption dict)."""
    kwargs = {}
    for key in ("url", "profile", "username", "password", "token", "verify_tls", "ca_file"):
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("connect_timeout") is not None:
        kwargs["timeout"] = params["connect_timeout"]
    kwargs.update(params.get("backend_options") or {})
    return kwargs


def connect(module, params=None):
    """Open the hypervisor the parameters name; a failure ends the module with a clear message."""
    require_hvkit(module)
    try:
        return hvkit.connect(**connection_kwargs(params if params is not None else module.params))
    except Exception as exc:
        fail(module, exc, "connect")
    return None  # not reached: fail() exits


def secrets_of(module):
    """Every secret value the module was given (top level and in source/target/members suboptions)."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("password", "token") and isinstance(item, str) and item:
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(module.params)
    return found


def scrub(text, secrets):
    """``text`` with every secret (and any password in a URL) replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"(://[^/\s:@]+:)[^@\s/]+@", r"\1***@", text)


def error_kind(exc):
    """The hvkit error class name of ``exc`` (closest known), or its own class name."""
    if hvkit_errors is not None:
        for name in ERROR_KINDS:
            cls = getattr(hvkit_errors, name, None)
            if cls is not None and isinstance(exc, cls):
                return name
    return type(exc).__name__


def fail(module, exc, action, **result):
    """End the module with one clear line: what was being done, the hvkit error kind and its text."""
    kind = error_kind(exc)
    text = scrub(str(exc) or kind, secrets_of(module))
    is_hvkit = hvkit_errors is not None and isinstance(exc, hvkit_errors.HvkitError)
    details = {} if is_hvkit else {"exception": scrub(traceback.format_exc(), secrets_of(module))}
    module.fail_json(msg=f"{action} failed: {kind}: {text}", error=kind, **details, **result)


def enum_value(value):
    return getattr(value, "value", value)


def vm_to_dict(vm):
    """A VM as plain data for results and diffs."""
    return {
        "id": vm.id,
        "name": vm.name,
        "power_state": enum_value(vm.power_state),
        "cpus": vm.cpus,
        "memory_mib": vm.memory_mib,
        "uuid": vm.uuid,
        "host": vm.host,
        "firmware": enum_value(vm.firmware),
        "guest_os": enum_value(vm.guest_os),
        "notes": vm.notes,
        "tags": sorted(vm.tags),
        "ip_addresses": list(vm.ip_addresses),
        "template": vm.template,
        "hypervisor": vm.hypervisor,
        "disks": [
            {
                "name": d.name,
                "size_bytes": d.size_bytes,
                "format": enum_value(d.format),
                "bus": enum_value(d.bus),
                "pool": d.pool,
                "volume": d.volume,
            }
            for d in vm.disks
        ],
        "nics": [{"mac": n.mac, "network": n.network, "model": enum_value(n.model), "name": n.name} for n in vm.nics],
    }


def snapshot_to_dict(snap):
    return {
        "id": snap.id,
        "name": snap.name,
        "vm": snap.vm,
        "parent": snap.parent,
        "created": snap.created.isoformat() if snap.created else None,
        "description": snap.description,
        "memory": snap.memory,
        "current": snap.current,
    }


def volume_to_dict(vol):
    return {
        "id": vol.id,
        "name": vol.name,
        "pool": vol.pool,
        "capacity_bytes": vol.capacity_bytes,
        "allocation_bytes": vol.allocation_bytes,
        "format": enum_value(vol.format),
        "path": vol.path,
        "backing": vol.backing,
    }


def find_vm(hv, name):
    """The VM named (or with the id) ``name``, or None."""
    try:
        return hv.vms.get(name)
    except hvkit_errors.NotFound:
        return None


def close_quietly(hv):
    if hv is not None:
        try:
            hv.close()
        except Exception:
            pass
