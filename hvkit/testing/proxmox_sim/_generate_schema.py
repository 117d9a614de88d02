"""Regenerate ``schema.json``: the subset of the official PVE API schema the simulator implements.

Usage::

    python -m hvkit.testing.proxmox_sim._generate_schema path/to/pve-apischema-9.1.3.json

The official schema (``apidoc.js`` data of pve-docs, as JSON) is read at generation time only; the
simulator reads the compact ``schema.json`` written next to this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# (path, method) pairs the simulator serves.
IMPLEMENTED: list[tuple[str, str]] = [
    ("/access/ticket", "POST"),
    ("/version", "GET"),
    ("/cluster/resources", "GET"),
    ("/cluster/nextid", "GET"),
    ("/cluster/ha/resources", "GET"),
    ("/cluster/ha/resources", "POST"),
    ("/cluster/ha/resources/{sid}", "GET"),
    ("/cluster/ha/resources/{sid}", "PUT"),
    ("/cluster/ha/resources/{sid}", "DELETE"),
    ("/cluster/ha/rules", "GET"),
    ("/cluster/ha/rules", "POST"),
    ("/cluster/ha/rules/{rule}", "GET"),
    ("/cluster/ha/rules/{rule}", "DELETE"),
    ("/cluster/ha/status/current", "GET"),
    ("/nodes", "GET"),
    ("/nodes/{node}/status", "GET"),
    ("/nodes/{node}/network", "GET"),
    ("/nodes/{node}/rrddata", "GET"),
    ("/nodes/{node}/storage", "GET"),
    ("/nodes/{node}/storage/{storage}/status", "GET"),
    ("/nodes/{node}/storage/{storage}/content", "GET"),
    ("/nodes/{node}/storage/{storage}/content", "POST"),
    ("/nodes/{node}/storage/{storage}/content/{volume}", "GET"),
    ("/nodes/{node}/storage/{storage}/content/{volume}", "DELETE"),
    ("/nodes/{node}/storage/{storage}/upload", "POST"),
    ("/nodes/{node}/tasks/{upid}", "DELETE"),
    ("/nodes/{node}/tasks/{upid}/status", "GET"),
    ("/nodes/{node}/tasks/{upid}/log", "GET"),
    ("/nodes/{node}/qemu", "GET"),
    ("/nodes/{node}/qemu", "POST"),
    ("/nodes/{node}/qemu/{vmid}", "DELETE"),
    ("/nodes/{node}/qemu/{vmid}/config", "GET"),
    ("/nodes/{node}/qemu/{vmid}/config", "POST"),
    ("/nodes/{node}/qemu/{vmid}/config", "PUT"),
    ("/nodes/{node}/qemu/{vmid}/status/current", "GET"),
    ("/nodes/{node}/qemu/{vmid}/status/start", "POST"),
    ("/nodes/{node}/qemu/{vmid}/status/stop", "POST"),
    ("/nodes/{node}/qemu/{vmid}/status/shutdown", "POST"),
    ("/nodes/{node}/qemu/{vmid}/status/reboot", "POST"),
    ("/nodes/{node}/qemu/{vmid}/status/reset", "POST"),
    ("/nodes/{node}/qemu/{vmid}/status/suspend", "POST"),
    ("/nodes/{node}/qemu/{vmid}/status/resume", "POST"),
    ("/nodes/{node}/qemu/{vmid}/clone", "POST"),
    ("/nodes/{node}/qemu/{vmid}/template", "POST"),
    ("/nodes/{node}/qemu/{vmid}/migrate", "POST"),
    ("/nodes/{node}/qemu/{vmid}/move_disk", "POST"),
    ("/nodes/{node}/qemu/{vmid}/snapshot", "GET"),
    ("/nodes/{node}/qemu/{vmid}/snapshot", "POST"),
    ("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "DELETE"),
    ("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", "POST"),
    ("/nodes/{node}/qemu/{vmid}/vncproxy", "POST"),
    ("/nodes/{node}/qemu/{vmid}/rrddata", "GET"),
    ("/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", "GET"),
]

# Keys of a parameter definition that validation needs; descriptions and type texts are dropped.
KEEP = {
    "type",
    "optional",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "alias",
    "keyAlias",
    "default_key",
    "requires",
    "items",
}


def _trim(defn: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in defn.items():
        if key not in KEEP:
            continue
        if key == "format" and isinstance(value, dict):
            value = {k: _trim(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            value = _trim(value)
        out[key] = value
    return out


def generate(source: Path) -> dict[str, Any]:
    tree = json.loads(source.read_text())
    index: dict[str, dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            index[node["path"]] = node
            walk(node.get("children", []))

    walk(tree)
    paths: dict[str, dict[str, Any]] = {}
    for path, method in IMPLEMENTED:
        info = index[path]["info"][method]
        params = info.get("parameters", {})
        paths.setdefault(path, {})[method] = {
            "additionalProperties": params.get("additionalProperties", 0),
            "properties": {name: _trim(d) for name, d in params.get("properties", {}).items()},
            "returns": info.get("returns", {}).get("type", "null"),
        }
    return {"source": source.name, "paths": paths}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    out = Path(__file__).with_name("schema.json")
    out.write_text(json.dumps(generate(Path(argv[1])), sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
