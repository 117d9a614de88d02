"""The simulator accepts what PVE 9.1.3's schema accepts and rejects the rest with PVE-shaped errors."""

from __future__ import annotations

from typing import Any

import pytest
from proxmoxer import ResourceException

from hvkit.testing.proxmox_sim.schema import check_params


def _errors(call: Any) -> dict[str, str]:
    with pytest.raises(ResourceException) as caught:
        call()
    assert caught.value.status_code == 400
    assert "Parameter verification failed." in str(caught.value)
    errors: dict[str, str] = caught.value.errors
    return errors


def test_unknown_parameter_is_rejected(px: Any) -> None:
    errors = _errors(lambda: px.nodes("pve1").qemu.post(vmid=900, name="x", bogus=1))
    assert errors == {
        "bogus": "property is not defined in schema and the schema does not allow additional properties\n"
    }


def test_type_enum_range_and_missing(px: Any) -> None:
    errors = _errors(lambda: px.nodes("pve1").qemu.post(vmid=5, cores="two", bios="uefi"))
    assert errors["vmid"] == "value must have a minimum value of 100\n"
    assert errors["cores"] == "type check ('integer') failed - got 'two'\n"
    assert errors["bios"] == "value 'uefi' does not have a value in the enumeration 'seabios, ovmf'\n"
    assert _errors(lambda: px.nodes("pve1").qemu.post(name="x")) == {
        "vmid": "property is missing and it is not optional\n"
    }


def test_property_strings_are_checked_key_by_key(px: Any) -> None:
    errors = _errors(
        lambda: px.nodes("pve1").qemu.post(
            vmid=901, net0="virtio,bridge=vmbr0,speed=10", virtio0="local-lvm:1,cache=fast"
        )
    )
    assert errors["net0"].startswith("invalid format - format error\n")
    assert "net0.speed: property is not defined in schema" in errors["net0"]
    assert (
        "virtio0.cache: value 'fast' does not have a value in the enumeration "
        "'none, writethrough, writeback, unsafe, directsync'" in errors["virtio0"]
    )


def test_formats_dns_name_urlencoded_ipconfig(px: Any) -> None:
    errors = _errors(
        lambda: px.nodes("pve1").qemu.post(
            vmid=902, name="my vm", sshkeys="ssh-ed25519 AAAA", ipconfig0="ip=10.0.0.300/24"
        )
    )
    assert errors["name"] == "invalid format - value does not look like a valid DNS name\n"
    assert errors["sshkeys"].startswith("invalid format - invalid urlencoded string")
    assert "ip: invalid format" in errors["ipconfig0"]


def test_valid_property_strings_pass() -> None:
    params = {
        "node": "pve1",
        "vmid": "100",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1",
        "virtio0": "local-lvm:32,discard=on",
        "efidisk0": "local-lvm:1,efitype=4m,pre-enrolled-keys=0",
        "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1",
        "memory": "2048",
        "tags": "a;b",
    }
    assert check_params("/nodes/{node}/qemu", "POST", params) == {}


def test_multicast_mac_and_index_limits() -> None:
    errors = check_params(
        "/nodes/{node}/qemu",
        "POST",
        {"node": "pve1", "vmid": "100", "net0": "virtio=01:00:00:00:00:01", "virtio16": "local-lvm:1"},
    )
    assert "macaddr: invalid format - value does not look like a valid unicast MAC address" in errors["net0"]
    assert errors["virtio16"].startswith("property is not defined in schema")


def test_unimplemented_path_is_501(px: Any) -> None:
    with pytest.raises(ResourceException) as caught:
        px.nodes("pve1").lxc.get()
    assert caught.value.status_code == 501


def test_pve_500_texts(px: Any) -> None:
    with pytest.raises(ResourceException) as caught:
        px.nodes("pve1").qemu(4242).config.get()
    assert caught.value.status_code == 500
    assert "Configuration file 'nodes/pve1/qemu-server/4242.conf' does not exist" in str(caught.value)


def test_perl_patterns_and_requires() -> None:
    ok = {"node": "pve1", "vmid": "100", "scsi0": "local-lvm:1,wwn=0x5000c500a1b2c3d4"}
    assert check_params("/nodes/{node}/qemu", "POST", ok) == {}
    bad = {**ok, "scsi0": "local-lvm:1,wwn=12"}
    assert (
        "scsi0.wwn: value does not match the regex pattern" in check_params("/nodes/{node}/qemu", "POST", bad)["scsi0"]
    )
    errors = check_params(
        "/nodes/{node}/storage/{storage}/upload",
        "POST",
        {"node": "pve1", "storage": "local", "content": "import", "filename": "a.qcow2", "checksum": "ab"},
    )
    assert errors == {"checksum-algorithm": "missing property - 'checksum' requires this property\n"}
