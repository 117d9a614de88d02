"""Specs are validated when built, with messages that say what is wrong."""

from __future__ import annotations

import pytest

from hvkit import CloudInit, DiskSpec, NicSpec, VMSpec, errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "empty"),
        ({"name": " web"}, "blanks"),
        ({"name": "a/b"}, "'/'"),
        ({"name": "x" * 81}, "at most 80"),
        ({"name": "tab\there"}, "control"),
        ({"name": "w", "cpus": 0}, "cpus must be between"),
        ({"name": "w", "cpus": True}, "cpus must be an integer"),
        ({"name": "w", "memory_mib": 4}, "memory_mib must be between"),
        ({"name": "w", "memory_mib": 1.5}, "memory_mib must be an integer"),
        ({"name": "w", "firmware": "efi"}, "not a valid Firmware"),
        (
            {"name": "w", "disks": [DiskSpec(size_gib=1, name="d"), DiskSpec(size_gib=1, name="d")]},
            "duplicate disk name",
        ),
        (
            {"name": "w", "nics": [NicSpec("n", mac="52:54:00:00:00:01"), NicSpec("n", mac="52-54-00-00-00-01")]},
            "duplicate MAC",
        ),
        ({"name": "w", "disks": ["10G"]}, "must be a DiskSpec"),
        ({"name": "w", "tags": {"ok", ""}}, "tag"),
    ],
)
def test_bad_vm_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        VMSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs size_gib"),
        ({"size_gib": 0}, "> 0"),
        ({"size_gib": 10**9}, "<="),
        ({"size_gib": "10"}, "must be a number"),
        ({"size_gib": 1, "volume": "v"}, "not both"),
        ({"size_gib": 1, "format": "vhd"}, "not a valid DiskFormat"),
        ({"size_gib": 1, "bus": "usb"}, "not a valid DiskBus"),
    ],
)
def test_bad_disk_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        DiskSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mac", ["52:54:00:12:34", "zz:54:00:12:34:56", "01:00:5e:00:00:01", "525400123456"])
def test_bad_macs(mac: str) -> None:
    with pytest.raises(errors.InvalidSpec, match="MAC"):
        NicSpec("default", mac=mac)


def test_good_spec_normalizes() -> None:
    spec = VMSpec(
        name='Wéb <1> & "quoted"',
        cpus=2,
        memory_mib=2048,
        disks=[DiskSpec(size_gib=0.5, format="qcow2")],
        nics=[NicSpec("lan", mac="52-54-00-AB-CD-EF", model="e1000")],
        firmware="uefi",
    )
    assert spec.nics[0].mac == "52:54:00:ab:cd:ef"
    assert spec.disks[0].size_bytes == 512 * 1024 * 1024
    assert spec.firmware.value == "uefi"
    assert isinstance(spec.disks, tuple)


def test_cloud_init_hides_password() -> None:
    ci = CloudInit(hostname="h", username="u", password="s3cret-ci")
    assert "s3cret-ci" not in repr(ci)
    with pytest.raises(errors.InvalidSpec, match="cloud-config"):
        CloudInit(user_data="packages: [x]")
