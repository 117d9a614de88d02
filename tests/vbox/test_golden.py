"""The stand-in prints what real VirtualBox printed, byte for byte, when its state matches the real host's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hvkit.backends.vbox import _parse
from hvkit.testing.vbox_sim import VBoxSim, run

GOLDEN = Path(__file__).with_name("golden")


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


@pytest.fixture
def sim70(tmp_path: Path) -> VBoxSim:
    return VBoxSim(tmp_path / "vbox", version="7.0")


def _vm(name: str, uuid: str, **fields: Any) -> dict[str, Any]:
    folder = f"/home/user/VirtualBox VMs/{name}"
    vm: dict[str, Any] = {
        "name": name,
        "uuid": uuid,
        "ostype": "Other",
        "cfgfile": f"{folder}/{name}.vbox",
        "memory": 128,
        "cpus": 1,
        "firmware": "BIOS",
        "description": "",
        "state": "poweroff",
        "state_time": "2023-02-06T02:18:47.191000000",
        "controllers": [],
        "attachments": [],
        "nics": [],
        "snapshots": [],
        "current_snapshot": None,
        "guestprops": {},
        "vrde": False,
    }
    vm.update(fields)
    return vm


def _out(sim: VBoxSim, *argv: str) -> str:
    status, out, err = run(list(argv), sim.root)
    assert status == 0, err
    return out


@pytest.mark.parametrize("name", ["list-vms.go-virtualbox.txt", "list-vms.ohai.txt"])
def test_list_vms(sim70: VBoxSim, name: str) -> None:
    text = golden(name)
    with sim70.edit() as state:
        state["vms"] = [_vm(n, u) for n, u in _parse.list_vms(text)]
    assert _out(sim70, "list", "vms") == text


def test_showvminfo_machinereadable_70(sim70: VBoxSim) -> None:
    """The real 7.0 sample: Encryption line, ' rec_screen0', escaped paths, per-attachment flags, raw newline."""
    text = golden("showvminfo-machinereadable.vbox7.0.vedv.txt")
    values = _parse.machinereadable(text)
    disk = values["SATA-0-0"]
    with sim70.edit() as state:
        state["media"] = [
            {
                "uuid": values["SATA-ImageUUID-0-0"],
                "location": disk,
                "format": "VDI",
                "capacity": 20 << 30,
                "parent": None,
            }
        ]
        state["vms"] = [
            _vm(
                values["name"],
                values["UUID"],
                ostype="ArchLinux_64",
                memory=4096,
                cpus=4,
                description=values["description"],
                state_time=values["VMStateChangeTime"],
                controllers=[
                    {"name": "IDE", "bus": "ide", "type": "PIIX4", "maxports": 2, "portcount": 2},
                    {"name": "SATA", "bus": "sata", "type": "IntelAhci", "maxports": 30, "portcount": 1},
                ],
                attachments=[
                    {"ctl": "IDE", "port": 1, "device": 0, "type": "dvddrive", "medium": None},
                    {"ctl": "SATA", "port": 0, "device": 0, "type": "hdd", "medium": values["SATA-ImageUUID-0-0"]},
                ],
                nics=[{"index": 1, "attach": "nat", "type": "82540EM", "mac": values["macaddress1"]}],
                settings={"vram": 64, "clipboard": "bidirectional", "draganddrop": "bidirectional", "usb": "on"},
            )
        ]
    assert _out(sim70, "showvminfo", values["name"], "--machinereadable") == text


def test_snapshot_list_machinereadable(sim70: VBoxSim) -> None:
    """A nested tree; CurrentSnapshot* right after the current node, depth first."""
    text = golden("snapshot-list-machinereadable.packer.txt")
    snaps, current = _parse.snapshot_tree(_parse.machinereadable(text))
    snaps.sort(key=lambda s: [int(p) for p in s["suffix"].split("-")[1:]])  # creation order = child order
    with sim70.edit() as state:
        vm = _vm("packer", "5e6b0e7c-3c53-4d5c-9d6a-6a0b1f0c2a11", current_snapshot=current)
        vm["snapshots"] = [
            {"uuid": s["uuid"], "name": s["name"], "description": "", "parent": s["parent"]} for s in snaps
        ]
        state["vms"] = [vm]
    assert _out(sim70, "snapshot", "packer", "list", "--machinereadable") == text


def test_list_hdds(sim70: VBoxSim) -> None:
    text = golden("list-hdds.ohai.txt")
    with sim70.edit() as state:
        state["media"] = [
            {
                "uuid": b["UUID"],
                "location": b["Location"],
                "format": b["Storage format"],
                "state": b["State"],
                "capacity": int(b["Capacity"].split()[0]) << 20,
                "parent": None if b["Parent UUID"] == "base" else b["Parent UUID"],
            }
            for b in _parse.key_value_blocks(text, "UUID")
        ]
    assert _out(sim70, "list", "hdds") == text


def _interfaces(text: str) -> list[dict[str, Any]]:
    return [
        {
            "name": b["Name"],
            "guid": b["GUID"],
            "ip": b["IPAddress"],
            "mask": b["NetworkMask"],
            "ipv6": b["IPV6Address"],
            "ipv6len": int(b["IPV6NetworkMaskPrefixLength"]),
            "mac": b["HardwareAddress"],
            "status": b["Status"],
        }
        for b in _parse.key_value_blocks(text, "Name")
    ]


@pytest.mark.parametrize(
    ("name", "key"), [("list-hostonlyifs.ohai.txt", "hostonlyifs"), ("list-bridgedifs.ohai.txt", "bridgedifs")]
)
def test_list_interfaces(sim70: VBoxSim, name: str, key: str) -> None:
    text = golden(name)
    with sim70.edit() as state:
        state[key] = _interfaces(text)
    assert _out(sim70, "list", key) == text


def test_list_natnets_sorted(sim70: VBoxSim) -> None:
    text = golden("list-natnets-sorted.ohai.txt")
    block = _parse.key_value_blocks(text, "NetworkName")[0]
    with sim70.edit() as state:
        state["natnets"] = [
            {
                "name": block["NetworkName"],
                "ip": block["IP"],
                "network": block["Network"],
                "ipv6": block["IPv6 Enabled"],
                "prefix": block["IPv6 Prefix"],
                "dhcp": block["DHCP Enabled"],
                "enabled": block["Enabled"],
                "loopback": re.findall(r"^ {8}(\S+)$", text, re.M),
            }
        ]
    assert _out(sim70, "list", "--sorted", "natnets") == text


def test_the_wrapper_prints_the_same_bytes(sim70: VBoxSim) -> None:
    """Through the VBoxManage wrapper (a real process), not only in-process."""
    import subprocess

    text = golden("list-vms.go-virtualbox.txt")
    with sim70.edit() as state:
        state["vms"] = [_vm(n, u) for n, u in _parse.list_vms(text)]
    proc = subprocess.run([str(sim70.vboxmanage), "list", "vms"], capture_output=True, check=True, timeout=60)
    assert proc.stdout == text.encode()


def test_version_differences_in_showvminfo(tmp_path: Path) -> None:
    """6.1 prints no Encryption line, no ' rec_screen0', paths unescaped; 7.0 does all three."""
    outputs = {}
    for version in ("6.1", "7.0"):
        sim = VBoxSim(tmp_path / version, version=version)
        with sim.edit() as state:
            state["media"] = [
                {
                    "uuid": "37a0bb6b-4292-464e-b766-1e8b7101ec94",
                    "location": 'C:\\VMs\\a "b".vdi',
                    "format": "VDI",
                    "capacity": 1 << 20,
                    "parent": None,
                }
            ]
            state["vms"] = [
                _vm(
                    "v",
                    "19e117b3-06f4-4a1e-851d-47336ad6a142",
                    controllers=[{"name": "SATA", "bus": "sata", "type": "IntelAhci", "maxports": 30, "portcount": 1}],
                    attachments=[
                        {
                            "ctl": "SATA",
                            "port": 0,
                            "device": 0,
                            "type": "hdd",
                            "medium": "37a0bb6b-4292-464e-b766-1e8b7101ec94",
                        }
                    ],
                )
            ]
        outputs[version] = _out(sim, "showvminfo", "v", "--machinereadable")
    assert "Encryption:     disabled\n" in outputs["7.0"] and "Encryption:" not in outputs["6.1"]
    assert "\n rec_screen0\n" in outputs["7.0"] and "rec_screen0" not in outputs["6.1"]
    assert '"SATA-0-0"="C:\\\\VMs\\\\a \\"b\\".vdi"' in outputs["7.0"]
    assert '"SATA-0-0"="C:\\VMs\\a "b".vdi"' in outputs["6.1"]
    for text in outputs.values():  # the backend's reader takes both
        assert _parse.machinereadable(text)["UUID"] == "19e117b3-06f4-4a1e-851d-47336ad6a142"
