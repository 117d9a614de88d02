"""UEFI guests on qemu:///system: OVMF picked by libvirt, the firmware read back, NVRAM removed with the VM."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hvkit.backends.kvm import KvmBackend
from hvkit.capabilities import Capability
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, Firmware, PowerState, VMSpec

pytestmark = pytest.mark.slow


def test_uefi_guest_runs_on_ovmf(qemu_hv: Hypervisor, prefix: str) -> None:
    if Capability.UEFI not in qemu_hv.capabilities:
        pytest.skip("no OVMF firmware for libvirt here (Debian: apt-get install ovmf)")
    vm = qemu_hv.vms.create(
        VMSpec(prefix + "uefi", memory_mib=128, firmware=Firmware.UEFI, disks=[DiskSpec(size_gib=0.01, pool="default")])
    )
    assert vm.firmware is Firmware.UEFI
    vm = qemu_hv.vms.start(vm)
    assert vm.power_state is PowerState.RUNNING
    backend = qemu_hv.backend
    assert isinstance(backend, KvmBackend)
    live = ET.fromstring(backend.conn.lookupByUUIDString(vm.id).XMLDesc(0))
    loader = live.find("os/loader")
    nvram = live.findtext("os/nvram")
    assert loader is not None and loader.get("type") == "pflash" and "OVMF" in (loader.text or "")
    assert nvram and Path(nvram).exists()
    assert qemu_hv.vms.get(vm.id).firmware is Firmware.UEFI
    qemu_hv.vms.delete(vm, force=True)
    assert not Path(nvram).exists()


def test_bios_guest_stays_bios(qemu_hv: Hypervisor, prefix: str) -> None:
    vm = qemu_hv.vms.create(VMSpec(prefix + "bios", memory_mib=128))
    assert vm.firmware is Firmware.BIOS
    qemu_hv.vms.delete(vm)
