"""What the cross-vendor migration tests share: the KVM and vcsim fixtures, test content, source VMs, read-back."""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.backend import DiskImage
from hvkit.hypervisor import Hypervisor
from hvkit.migration import convert_image

__all__ = ["data_content", "kvm_hypervisor", "read_back", "remove", "source_on", "vcenter_hypervisor"]


def kvm_hypervisor() -> Iterator[Hypervisor]:
    """The local libvirtd (QEMU), as the body of a module-scoped fixture."""
    libvirt = pytest.importorskip("libvirt", reason="the kvm backend needs libvirt-python")
    try:
        conn = libvirt.open("qemu:///system")
        conn.storagePoolLookupByName("default")
        conn.networkLookupByName("default")
        conn.close()
    except libvirt.libvirtError as exc:
        pytest.skip(f"no usable libvirtd at qemu:///system ({exc.get_error_message()}); run scripts/setup.d/20-kvm.sh")
    with hvkit.connect("kvm:///system", virt_type="qemu") as hv:
        yield hv


def vcenter_hypervisor() -> Iterator[Hypervisor]:
    """A vcsim vCenter as a fixture body (see :func:`kvm_hypervisor`)."""
    pytest.importorskip("pyVmomi", reason="the vmware backend needs pyvmomi")
    if shutil.which("go") is None:
        pytest.skip("vcsim needs the Go compiler: see scripts/setup.d/30-vmware.packages")
    from hvkit.testing.vcsim import Vcsim, VcsimConfig

    config = VcsimConfig(esx=False, datastores=1, username="admin@vsphere.local", password="Mig-pa55word")
    with Vcsim(config) as sim, hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file) as hv:
        yield hv


def data_content(size: int, seed: int) -> bytes:
    """``size`` bytes: random runs at three places, the rest zeros, a marker with the seed at the start."""
    rnd = random.Random(seed)
    content = bytearray(size)
    for off in (0, size // 3, size - 3 * 65536):
        content[off : off + 100_000] = rnd.randbytes(min(100_000, size - off))
    content[:16] = f"mig-marker-{seed:05d}".encode()
    return bytes(content)


def source_on(hv: Hypervisor, tmp: Path, name: str, content: bytes, pool: str, network: str, bus: str) -> hvkit.VM:
    """A stopped VM whose one disk holds ``content``, put there through the vendor's API.

    Uses the volume upload stream where the backend has one, else its disk import (Proxmox).
    """
    raw = tmp / f"{name}.raw"
    raw.write_bytes(content)
    if hvkit.Capability.VOLUME_UPLOAD in hv.capabilities:
        vol = hv.volumes.create(pool, f"{name}-src", max(len(content) / 1024**3, 0.01))
        hv.volumes.upload(vol.id, raw)
    else:
        target = hv.pools.get(pool)
        fmt = hvkit.DiskFormat.QCOW2 if hvkit.DiskFormat.QCOW2 in target.formats else hvkit.DiskFormat.RAW
        image = DiskImage(str(raw), hvkit.DiskFormat.RAW, len(content))
        with hv.translating("import_disk"):
            vol = hv.backend.import_disk(target, f"{name}-src", image, fmt, str(tmp), lambda a, b: None)
    disk = hvkit.DiskSpec(volume=vol.id, bus=bus)
    vm: hvkit.VM = hv.vms.create(
        hvkit.VMSpec(name=name, cpus=1, memory_mib=256, disks=[disk], nics=[hvkit.NicSpec(network)])
    )
    return vm


def read_back(hv: Hypervisor, volume: str, tmp: Path, size: int) -> bytes:
    """A volume's content, read through the backend's disk export (any backend in the contract)."""
    work = tmp / f"back-{uuid.uuid4().hex[:6]}"
    with hv.translating("export_disk"):
        image = hv.backend.export_disk(hv.volumes.get(volume), str(work), lambda a, b: None)
    raw = convert_image(image, hvkit.DiskFormat.RAW, work)
    return Path(raw.path).read_bytes()[:size]


def remove(hv: Hypervisor, prefix: str) -> None:
    """Delete the VMs, then the volumes, whose names start with ``prefix``."""
    for vm in hv.vms.list():
        if vm.name.startswith(prefix):
            hv.vms.delete(vm, force=True)
    for vol in hv.volumes.list():
        if vol.name.startswith(prefix):
            hv.volumes.delete(vol)
