"""Volumes: create, list, upload and download (round trip with holes), delete."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import pytest

from ... import errors
from ...capabilities import Capability
from ...hypervisor import Hypervisor
from ...models import VM, DiskSpec, Volume
from ._base import ConformanceBase, requires

MIB = 1024 * 1024


class VolumeTests(ConformanceBase):
    @pytest.fixture
    def volume(self, hv: Hypervisor, prefix: str) -> Iterator[Volume]:
        if Capability.VOLUME_CREATE not in hv.capabilities:
            pytest.skip(f"{hv.kind} does not declare volume.create")
        pool = self.pool or hv.pools.list()[0].name
        vol = hv.volumes.create(pool, f"{prefix}-vol", 4 / 1024)
        yield vol
        try:
            hv.volumes.delete(vol)
        except errors.NotFound:
            pass

    @requires(Capability.VOLUME_CREATE, Capability.VOLUME_DELETE)
    def test_create_list_delete(self, hv: Hypervisor, volume: Volume) -> None:
        assert volume.capacity_bytes == 4 * MIB
        assert volume.id in {v.id for v in hv.volumes.list(volume.pool)}
        assert hv.volumes.get(volume.id).name == volume.name
        with pytest.raises(errors.AlreadyExists):
            hv.volumes.create(volume.pool, volume.name, 4 / 1024)
        hv.volumes.delete(volume)
        with pytest.raises(errors.NotFound):
            hv.volumes.get(volume.id)

    @requires(Capability.VOLUME_CREATE, Capability.VOLUME_UPLOAD, Capability.VOLUME_DOWNLOAD)
    def test_upload_download_round_trip(self, hv: Hypervisor, volume: Volume) -> None:
        data = os.urandom(MIB) + bytes(2 * MIB) + b"hvkit-marker" + bytes(MIB - 12)
        hv.volumes.upload(volume, io.BytesIO(data))
        out = io.BytesIO()
        count = hv.volumes.download(volume, out)
        assert count == volume.capacity_bytes
        assert out.getvalue()[: len(data)] == data

    @requires(Capability.VOLUME_UPLOAD)
    def test_upload_too_large(self, hv: Hypervisor, volume: Volume) -> None:
        with pytest.raises(errors.InvalidSpec):
            hv.volumes.upload(volume, io.BytesIO(bytes(volume.capacity_bytes + 1)))

    @requires(Capability.VOLUME_CREATE)
    def test_create_validates(self, hv: Hypervisor) -> None:
        pool = self.pool or hv.pools.list()[0].name
        with pytest.raises(errors.InvalidSpec):
            hv.volumes.create(pool, "bad/name", 1)
        with pytest.raises(errors.InvalidSpec):
            hv.volumes.create(pool, "ok", -1)
        with pytest.raises(errors.NotFound):
            hv.volumes.create("hvkit-no-such-pool", "ok", 1)

    @requires(Capability.VM_CREATE, Capability.VOLUME_CREATE, Capability.VOLUME_DELETE)
    def test_attached_volume_is_not_deleted(self, hv: Hypervisor, volume: Volume, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("attach", disks=[DiskSpec(volume=volume.id)])
        assert [d.volume for d in vm.disks] == [volume.id]
        with pytest.raises(errors.InvalidState):
            hv.volumes.delete(volume)
        hv.vms.delete(vm, keep_disks=True)
