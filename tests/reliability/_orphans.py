"""Shared by the reliability tests: fresh simulators, VM specs, and orphan counts.

An orphan is a VM nobody asked for, a volume no VM uses, or an image file no volume stands for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hvkit
from hvkit import DiskSpec, NicSpec, VMSpec
from hvkit.backends.sim import forget
from hvkit.driver import image_info
from hvkit.testing.proxmox_sim import ProxmoxSimulator


def spec(name: str, **kw: object) -> VMSpec:
    fields: dict[str, object] = {"memory_mib": 256, "disks": [DiskSpec(size_gib=0.01)], "nics": [NicSpec("default")]}
    return VMSpec(name=name, **{**fields, **kw})  # type: ignore[arg-type]


def pve_spec(name: str, **kw: object) -> VMSpec:
    fields: dict[str, object] = {
        "memory_mib": 256,
        "disks": [DiskSpec(size_gib=0.01, pool="local")],
        "nics": [NicSpec("vmbr0")],
    }
    return VMSpec(name=name, **{**fields, **kw})  # type: ignore[arg-type]


def fresh_sim(**options: str) -> Iterator[hvkit.Hypervisor]:
    name = f"r{uuid.uuid4().hex[:8]}"
    query = "&".join(f"{k}={v}" for k, v in options.items())
    with hvkit.connect(f"sim://{name}" + (f"?{query}" if query else "")) as hv:
        yield hv
    forget(name)


def connect_pve(sim: ProxmoxSimulator) -> hvkit.Hypervisor:
    return hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10)


def pve_session(sim: ProxmoxSimulator) -> Iterator[hvkit.Hypervisor]:
    """A connection to ``sim`` for one test; every VM is deleted after it (linked clones before their templates)."""
    hv = connect_pve(sim)
    yield hv
    for vm in sorted(hv.vms.list(), key=lambda v: v.template):
        hv.vms.delete(vm.id, force=True)
    hv.close()


def sim_orphans(hv: hvkit.Hypervisor, expected_vms: set[str]) -> list[str]:
    """VMs not in ``expected_vms`` (ids), volumes no VM uses, image files no volume stands for."""
    world = hv.backend.world  # type: ignore[attr-defined]
    with world.lock:
        found = [f"VM {vid} ({vm['name']})" for vid, vm in world.vms.items() if vid not in expected_vms]
        used = {d["volume"] for vm in world.vms.values() for d in vm["disks"]}
        used |= {b for vm in world.vms.values() for b in vm.get("bases", ())}  # bases a VM moved off
        used |= {v for vm in world.vms.values() for s in vm["snapshots"].values() for v in s["files"]}
        chain = list(used)
        while chain:  # the backing files of what is used are used
            base = world.volumes.get(chain.pop(), {}).get("backing")
            if base and base not in used:
                used.add(base)
                chain.append(base)
        found += [f"volume {vid}" for vid in world.volumes if vid not in used]
        paths = {Path(v["path"]) for v in world.volumes.values()}
        found += [f"file {p}" for p in (world.root / "pools").rglob("*") if p.is_file() and p not in paths]
        for vol in world.volumes.values():
            if vol.get("backing") and vol["backing"] not in world.volumes:
                found.append(f"volume {vol['id']} lost its base {vol['backing']}")
    return found


def pve_orphans(sim: ProxmoxSimulator, expected_vms: set[int]) -> list[str]:
    """The same on the Proxmox simulator: unexpected vmids, disk images no VM config names."""
    c = sim.cluster
    with c.mu:
        found = [f"VM {vmid}" for vmid in c.vms if vmid not in expected_vms]
        used: set[Path] = set()
        for vm in c.vms.values():
            for disk in c.vm_disks(vm).values():
                file = disk.get("file", "")
                if ":" in file:
                    used.add(c.volume_path(vm.node, file))
    for path in sorted((sim.root / "storage").rglob("*")):
        if not path.is_file() or {"iso", "import", "snippets"} & set(path.parts):
            continue
        if path not in used:
            found.append(f"file {path.relative_to(sim.root)}")
        elif path.suffix == ".qcow2":
            info = image_info(path)
            base = info.get("backing-filename")
            if base and not Path(base).exists():
                found.append(f"file {path.relative_to(sim.root)} lost its base")
    return found
