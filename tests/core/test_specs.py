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
        ({"size_gib": 0}, "at least 1 MiB"),
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


# -- strict types and ranges: what a new user tried, and what it became before ------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "w", "cpus": None}, "cpus must be an integer"),
        ({"name": "w", "memory_mib": None}, "memory_mib must be an integer"),
        ({"name": "w", "cpus": None, "memory_mib": None}, "must be an integer"),
        ({"name": "w", "cpus": 2.0}, "cpus must be an integer"),
        ({"name": "w", "cpus": -1}, "cpus must be between"),
        ({"name": "w", "memory_mib": False}, "memory_mib must be an integer"),
        ({"name": "w", "tags": "abc"}, "tags must be a set of strings"),
        ({"name": "w", "tags": b"abc"}, "tags must be a set of strings"),
        ({"name": "w", "tags": 5}, "tags must be a set of strings"),
        ({"name": "w", "tags": None}, "tags must be a set of strings"),
        ({"name": "w", "tags": [1]}, "tag must be a string"),
        ({"name": "w", "disks": None}, "disks must be a list"),
        ({"name": "w", "disks": "10G"}, "disks must be a list"),
        ({"name": "w", "disks": DiskSpec(size_gib=1)}, "disks must be a list"),
        ({"name": "w", "nics": None}, "nics must be a list"),
        ({"name": "w", "nics": {"lan": 1}}, "nics must be a list"),
        ({"name": "w", "nics": [None]}, "must be a NicSpec"),
        ({"name": "w", "firmware": None}, "not a valid Firmware"),
        ({"name": "w", "firmware": ["uefi"]}, "not a valid Firmware"),
        ({"name": "w", "guest_os": 3}, "not a valid GuestOS"),
        ({"name": "w", "host": 5}, "host must be a string"),
        ({"name": "w", "host": ""}, "empty"),
        ({"name": "w", "notes": None}, "notes must be a string"),
        ({"name": "w", "notes": "a\x00b"}, "control character"),
        ({"name": "w", "notes": "x" * 70000}, "at most"),
        ({"name": "w", "extra": "abc"}, "extra must be a mapping"),
        ({"name": "w", "extra": {1: "x"}}, "extra keys must be strings"),
        ({"name": "w", "cloud_init": {"hostname": "h"}}, "cloud_init must be a CloudInit"),
        ({"name": None}, "must be a string"),
        ({"name": "a\x00b"}, "control"),
    ],
)
def test_strict_vm_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        VMSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size_gib": 1e-12}, "at least 1 MiB"),
        ({"size_gib": 0.0009}, "at least 1 MiB"),
        ({"size_gib": -1}, "at least 1 MiB"),
        ({"size_gib": float("nan")}, "finite"),
        ({"size_gib": float("inf")}, "finite"),
        ({"size_gib": float("-inf")}, "finite"),
        ({"size_gib": True}, "must be a number"),
        ({"size_gib": None}, "needs size_gib"),
        ({"size_gib": [1]}, "must be a number"),
        ({"size_gib": 10**400}, "<="),
        ({"size_gib": 1, "pool": 5}, "pool must be a string"),
        ({"size_gib": 1, "name": ""}, "empty"),
        ({"volume": ""}, "volume must be a non-empty string"),
        ({"volume": 7}, "volume must be a non-empty string"),
        ({"volume": "pool/v\x00"}, "control character"),
        ({"size_gib": 1, "format": 5}, "not a valid DiskFormat"),
        ({"size_gib": 1, "bus": None}, "not a valid DiskBus"),
    ],
)
def test_strict_disk_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        DiskSpec(**kwargs)  # type: ignore[arg-type]


def test_disk_specs_still_accept_small_and_volume_paths() -> None:
    assert DiskSpec(size_gib=1 / 1024).size_bytes == 1024 * 1024
    assert DiskSpec(size_gib=1).size_bytes == 1024**3
    assert DiskSpec(volume="local:100/vm-100-disk-0.qcow2").volume == "local:100/vm-100-disk-0.qcow2"
    assert DiskSpec(volume="/var/lib/libvirt/images/a.qcow2").size_gib is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"network": "lan", "mac": 5}, "MAC address must be a string"),
        ({"network": "lan", "mac": b"52:54:00:12:34:56"}, "MAC address must be a string"),
        ({"network": None}, "must be a string"),
        ({"network": "lan", "model": None}, "not a valid NicModel"),
    ],
)
def test_strict_nic_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        NicSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ssh_keys": "ssh-rsa AAA"}, "ssh_keys must be a list"),
        ({"ssh_keys": None}, "ssh_keys must be a list"),
        ({"ssh_keys": [5]}, "ssh key must be a string"),
        ({"ssh_keys": [""]}, "ssh key"),
        ({"ssh_keys": ["ssh-rsa AAA\nssh-rsa BBB"]}, "one line"),
        ({"ssh_keys": ["AAAAB3NzaC1yc2E"]}, "type and the key"),
        ({"user_data": 5}, "user_data must be a string"),
        ({"user_data": b"#cloud-config\n"}, "user_data must be a string"),
        ({"hostname": 5}, "hostname must be a string"),
        ({"hostname": "bad host"}, "hostname"),
        ({"hostname": "-x"}, "hostname"),
        ({"hostname": "a" * 64}, "hostname"),
        ({"hostname": ""}, "hostname"),
        ({"username": "a b"}, "username"),
        ({"username": ""}, "username"),
        ({"username": "a:b"}, "username"),
        ({"username": 0}, "username must be a string"),
        ({"password": 123}, "password must be a string"),
        ({"password": "a\nb"}, "password"),
        ({"network_config": 5}, "network_config must be a string"),
    ],
)
def test_strict_cloud_init(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        CloudInit(**kwargs)  # type: ignore[arg-type]


def test_strict_errors_never_echo_the_password() -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        CloudInit(password="s3cret\nline")
    assert "s3cret" not in str(caught.value)


def test_valid_specs_still_build() -> None:
    spec = VMSpec(
        name="web",
        tags=["a", "b"],
        disks=[DiskSpec(size_gib=10)],
        nics=(NicSpec("lan"),),
        notes="line one\nline two\ttabbed",
        extra={"k": 1},
        host="node1",
        cloud_init=CloudInit(
            hostname="web-1.example.org",
            username="Administrator",
            password="p@ss w0rd",
            ssh_keys=["ssh-ed25519 AAAAC3 me@host", "sk-ssh-ed25519@openssh.com AAAA x"],
            user_data="#cloud-config\n",
        ),
    )
    assert spec.tags == frozenset({"a", "b"})
    assert spec.cloud_init is not None and len(spec.cloud_init.ssh_keys) == 2
    assert VMSpec(name="w", tags=frozenset()).tags == frozenset()
    assert VMSpec(name="w", disks=iter([DiskSpec(size_gib=1)])).disks[0].size_gib == 1


@pytest.mark.parametrize("size", [float("nan"), float("inf"), 10**400, 0, 1e-12, True, "1", None])
def test_volume_sizes_are_finite_and_at_least_one_mib(sim: object, size: object) -> None:
    hv = sim
    with pytest.raises(errors.InvalidSpec, match="volume size_gib"):
        hv.volumes.create("default", "v1", size_gib=size)  # type: ignore[attr-defined]
    assert not [v for v in hv.volumes.list() if v.name.startswith("v1")]  # type: ignore[attr-defined]
