"""Write ``model.json``: the XenAPI data model in the compact form the simulator loads.

Run from a checkout beside the reference data::

    python -m hvkit.testing.xapi_sim._generate_model path/to/xenapi.json

The reference file (xen-api's ``doc/data/xenapi.json``) is read only here. It lists every class with
its fields (type, qualifier, default), messages (parameters, result, errors, implicit or not) and
enums. It names the errors each message may raise but not their parameters; those come from XAPI's
error definitions (``ocaml/xapi-consts/api_errors.ml``) and are written below for the errors the
simulator raises, so a test can check every error it sends has the count XAPI sends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("model.json")

# error code -> parameter names, as XAPI sends them (api_errors.ml)
ERROR_PARAMS: dict[str, list[str]] = {
    "DEVICE_ALREADY_EXISTS": ["device"],
    "FIELD_TYPE_ERROR": ["field"],
    "HANDLE_INVALID": ["class", "handle"],
    "HOST_IS_SLAVE": ["master_ip_address"],
    "HOST_NOT_ENOUGH_FREE_MEMORY": ["needed", "available"],
    "INTERNAL_ERROR": ["message"],
    "INVALID_VALUE": ["field", "value"],
    "MAC_INVALID": ["mac"],
    "MAP_DUPLICATE_KEY": ["type", "param_name", "uuid", "key"],
    "MEMORY_CONSTRAINT_VIOLATION": ["constraint"],
    "MESSAGE_METHOD_UNKNOWN": ["method"],
    "MESSAGE_PARAMETER_COUNT_MISMATCH": ["method", "expected", "received"],
    "NOT_IMPLEMENTED": ["function"],
    "OPERATION_NOT_ALLOWED": ["reason"],
    "OTHER_OPERATION_IN_PROGRESS": ["class", "object"],
    "SESSION_AUTHENTICATION_FAILED": ["username", "message"],
    "SESSION_INVALID": ["handle"],
    "SR_FULL": ["requested", "maximum"],
    "SR_OPERATION_NOT_SUPPORTED": ["sr"],
    "TASK_CANCELLED": ["task"],
    "UUID_INVALID": ["class", "uuid"],
    "VBD_IS_EMPTY": ["vbd"],
    "VBD_NOT_EMPTY": ["vbd"],
    "VBD_NOT_REMOVABLE_MEDIA": ["vbd"],
    "VDI_IN_USE": ["vdi", "operation"],
    "VDI_MISSING": ["sr", "vdi"],
    "VDI_NEEDS_VM_FOR_MIGRATE": ["vdi"],
    "VM_BAD_POWER_STATE": ["vm", "expected", "actual"],
    "VM_HAS_NO_SUSPEND_VDI": ["vm"],
    "VM_IS_TEMPLATE": ["vm"],
    "VM_REQUIRES_SR": ["vm", "sr"],
    "VM_REVERT_FAILED": ["vm", "snapshot"],
    "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED": ["vm", "error"],
    "VDI_IO_ERROR": ["reason"],
    "VDI_TOO_SMALL": ["vdi", "minimum_size"],
    "EVENTS_LOST": [],
}
# raised by XAPI's dispatcher for any call, so no message lists them
PROTOCOL_ERRORS = {
    "FIELD_TYPE_ERROR",
    "HANDLE_INVALID",
    "INTERNAL_ERROR",
    "MESSAGE_METHOD_UNKNOWN",
    "MESSAGE_PARAMETER_COUNT_MISMATCH",
    "SESSION_INVALID",
    "UUID_INVALID",
}


def compact(data: list[dict[str, Any]]) -> dict[str, Any]:
    classes: dict[str, Any] = {}
    enums: dict[str, list[str]] = {}
    errors: dict[str, dict[str, Any]] = {}
    for cls in data:
        for enum in cls.get("enums", []):
            enums[enum["name"]] = [v["name"] for v in enum["values"]]
        fields = {f["name"]: [f["type"], f["qualifier"], f.get("default")] for f in cls["fields"]}
        messages = {}
        for msg in cls["messages"]:
            messages[msg["name"]] = {
                "params": [[p["type"], p["name"]] for p in msg["params"]],
                "result": msg["result"][0],
                "errors": [e["name"] for e in msg["errors"]],
                "implicit": bool(msg.get("implicit")),
            }
            for err in msg["errors"]:
                errors.setdefault(err["name"], {"doc": err["doc"]})
        classes[cls["name"]] = {"fields": fields, "messages": messages}
    for name, params in ERROR_PARAMS.items():
        if name not in errors and name not in PROTOCOL_ERRORS:
            errors[name] = {"doc": ""}
        errors.setdefault(name, {"doc": ""})["params"] = params
    return {"classes": classes, "enums": enums, "errors": errors, "protocol_errors": sorted(PROTOCOL_ERRORS)}


def main(argv: list[str]) -> None:
    source = Path(argv[1] if len(argv) > 1 else "../shared/reference/xenapi/xenapi.json")
    model = compact(json.loads(source.read_text()))
    OUT.write_text(json.dumps(model, separators=(",", ":"), sort_keys=True))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(model['classes'])} classes)")


if __name__ == "__main__":
    main(sys.argv)
