"""The public surface: names, lightness of `import hvkit`, the error hierarchy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hvkit
from hvkit import errors

PUBLIC = {
    "URL", "VM", "Capability", "CloudInit", "Console", "Disk", "DiskBus", "DiskFormat", "DiskSpec", "Firmware",
    "Fleet", "GuestOS", "Host", "HostMetrics", "Hypervisor", "Network", "Nic", "NicModel", "NicSpec", "PowerState",
    "Snapshot", "StoragePool", "Task", "TaskInfo", "TaskState", "VMMetrics", "VMSpec", "Volume", "__version__",
    "connect", "errors", "parse_url", "register",
}  # fmt: skip


def test_all_is_the_intended_surface() -> None:
    assert set(hvkit.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(hvkit, name)


def test_import_pulls_in_no_vendor_sdk() -> None:
    code = (
        "import hvkit, sys;"
        "bad = {'pyVmomi','libvirt','proxmoxer','winrm','XenAPI','requests','pytest','blake3','xxhash'}"
        " & set(sys.modules);"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_error_hierarchy() -> None:
    assert issubclass(errors.InvalidSpec, ValueError)
    assert issubclass(errors.Unsupported, NotImplementedError)
    assert issubclass(errors.AuthenticationError, errors.ConnectionError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.HvkitError)
    exc = errors.Unsupported("kvm", "vms.pause")
    assert "kvm" in str(exc) and "vms.pause" in str(exc)


def test_power_states_stay_distinct() -> None:
    values = {s.value for s in hvkit.PowerState}
    assert {"running", "stopped", "paused", "suspended", "crashed", "unknown"} <= values


@pytest.mark.parametrize("kind", ["kvm", "vcenter", "proxmox"])
def test_missing_sdk_names_the_extra(kind: str) -> None:
    code = (
        "import sys; sys.modules.update(dict.fromkeys(['libvirt','pyVmomi','pyVim','proxmoxer','requests'], None));"
        "from hvkit import _registry\n"
        f"try:\n    _registry.load({kind!r})\nexcept ImportError as e:\n    print(e)\n"
        "else:\n    raise SystemExit('loaded')"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "pip install 'hvkit[" in out
