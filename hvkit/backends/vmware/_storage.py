"""vSphere volumes: the VMDK files of each datastore, made, deleted, uploaded and downloaded."""

from __future__ import annotations

import io
from typing import IO, Any

from ...driver import ProgressFn, Task
from ...errors import (
    InvalidSpec,
    NotFound,
)
from ...models import (
    DiskFormat,
    StoragePool,
    Volume,
)
from . import _inventory
from ._datastore_files import split_datastore_path
from ._session import (
    CAPACITY,
    SKIP_VMDK,
    VmwareSession,
    descriptor,
    vim,
)


def list_volumes(session: VmwareSession, pool: StoragePool) -> list[Volume]:
    ds = session.ref(vim.Datastore, pool.id)
    browser = session.pc.read(ds, ["browser"]).get("browser")
    if browser is None:
        return []
    flags = vim.host.DatastoreBrowser.FileInfo.Details(fileSize=True, fileType=True, modification=True)
    query = vim.host.DatastoreBrowser.VmDiskQuery(
        details=vim.host.DatastoreBrowser.VmDiskQuery.Details(capacityKb=True, diskType=True)
    )
    search = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*.vmdk"], details=flags, query=[query])
    task = browser.SearchDatastoreSubFolders_Task(datastorePath=f"[{pool.name}]", searchSpec=search)
    results = (
        session.task(task, "volumes.list", pool.name, lambda r: r).wait(
            float(session.options.option("task_timeout", 1800.0))
        )
        or []
    )
    sizes: dict[str, int] = {}
    disks: list[tuple[str, Any]] = []
    for result in results:
        ds_name, folder = split_datastore_path(result.folderPath)
        folder = folder.strip("/")
        for info in result.file or []:
            rel = f"{folder}/{info.path}" if folder else info.path
            path = f"[{ds_name}] {rel.lstrip('/')}"
            sizes[path] = int(info.fileSize or 0)
            if not info.path.endswith(SKIP_VMDK):
                disks.append((path, info))
    out = []
    attached: dict[str, int] | None = None  # disk path -> capacity the VMs using it give, read once if needed
    for path, info in sorted(disks, key=lambda item: item[0]):
        flat = path[: -len(".vmdk")] + "-flat.vmdk"
        capacity = (
            int(getattr(info, "capacityKb", 0) or 0) * 1024 or _descriptor_capacity(session, path) or sizes.get(flat, 0)
        )
        if not capacity:  # an empty thin disk whose files say nothing (vcsim): the VM's disk device knows
            attached = _attached_capacities(session) if attached is None else attached
            capacity = attached.get(path, 0)
        allocation = sizes.get(flat, 0) + sizes.get(path, 0)
        out.append(
            Volume(
                id=path,
                name=info.path.rsplit("/", 1)[-1][: -len(".vmdk")],
                pool=pool.name,
                capacity_bytes=capacity,
                allocation_bytes=allocation,
                format=DiskFormat.VMDK,
                path=path,
                extra={"datastore": pool.id},
            )
        )
    return out


def _attached_capacities(session: VmwareSession) -> dict[str, int]:
    """Capacity of every disk some VM has attached, by datastore path: one PropertyCollector read."""
    found: dict[str, int] = {}
    for _obj, props in session.pc.collect(session.dc, {vim.VirtualMachine: ["config.hardware.device"]}):
        for device in props.get("config.hardware.device") or []:
            name = getattr(getattr(device, "backing", None), "fileName", None)
            if isinstance(device, vim.vm.device.VirtualDisk) and name:
                found[name] = int(getattr(device, "capacityInBytes", 0) or 0) or int(device.capacityInKB) * 1024
    return found


def _descriptor_capacity(session: VmwareSession, path: str) -> int:
    try:
        _, data = session.files.get(session.dc_name, path, None)
    except NotFound:
        return 0
    if len(data) > 64 * 1024:  # not a text descriptor (a monolithic sparse disk)
        return 0
    return sum(int(m.group(1)) * 512 for m in CAPACITY.finditer(data.decode("utf-8", "replace")))


def get_volume(session: VmwareSession, ref: str) -> Volume:
    try:
        ds_name, rel = split_datastore_path(ref)
    except ValueError:
        raise NotFound(f"no volume {ref!r}: volume ids are datastore paths like '[datastore1] dir/disk.vmdk'") from None
    for pool in _inventory.list_pools(session):
        if pool.name == ds_name:
            for vol in list_volumes(session, pool):
                if vol.id == ref or vol.id == f"[{ds_name}] {rel}":
                    return vol
            break
    raise NotFound(f"no volume {ref!r}")


def create_volume(session: VmwareSession, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
    if fmt is not DiskFormat.VMDK:
        raise InvalidSpec(f"VMware volumes are vmdk; {fmt.value} was asked")
    path = f"[{pool.name}] {name}.vmdk"
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
        diskType="thin", adapterType="lsiLogic", capacityKb=size_bytes // 1024
    )
    manager = session.content.virtualDiskManager
    session.wait(manager.CreateVirtualDisk_Task(name=path, datacenter=session.dc, spec=spec), "volume.create", name)
    _, data = session.files.get(session.dc_name, path, None)
    if not data.strip():
        # The server made an empty descriptor (vcsim keeps empty files): write a real one, so the
        # disk's size is known to every reader, as on ESXi.
        body = descriptor(name, size_bytes)
        session.files.put(session.dc_name, path, io.BytesIO(body), len(body))
    return get_volume(session, path)


def delete_volume(session: VmwareSession, volume: Volume) -> Task:
    manager = session.content.virtualDiskManager
    return session.task(
        manager.DeleteVirtualDisk_Task(name=volume.id, datacenter=session.dc),
        "volume.delete",
        volume.name,
        lambda _: None,
    )


def upload_volume(session: VmwareSession, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
    session.files.put(session.dc_name, session.flat(volume), source, size, progress)


def download_volume(session: VmwareSession, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
    total = volume.capacity_bytes

    def report(done: int, _: int) -> None:
        progress(done, max(total, done))

    count, _ = session.files.get(session.dc_name, session.flat(volume), sink, report)
    # A thin or sparse extent may be shorter than the disk: the guest reads zeros past its end.
    zeros = bytes(1024 * 1024)
    while count < total:
        step = min(len(zeros), total - count)
        sink.write(zeros[:step])
        count += step
        progress(count, total)
    return count
