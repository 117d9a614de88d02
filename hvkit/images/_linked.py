"""Linked disks from images: copy-on-write volumes over an image's volume, and which of them still exist.

An image with linked disks must outlive them. Two sources name them: the catalogue (the ids of the linked
volumes hvkit made, pruned when they are gone) and the hypervisor (volumes whose backing is the image's
volume, where the backend says so). Either one keeps the image from being deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidState, NotFound
from ..models import Volume
from ..tasks import Task
from ._catalog import Image

if TYPE_CHECKING:
    from ..hypervisor import Hypervisor

__all__ = ["create_linked", "refuse_if_used"]


def create_linked(hv: Hypervisor, pool: object, name: str, base: Volume) -> Volume:
    """A new volume ``name`` in ``pool`` reading ``base`` copy-on-write (the backend's create_linked_volume)."""
    result = hv.call("images.link", hv.backend.create_linked_volume, pool, name, base)
    if isinstance(result, Task):
        with hv.translating("images.link"):
            result = result.wait(hv.task_timeout)
    if not isinstance(result, Volume):
        raise TypeError(f"{hv.kind}: create_linked_volume gave {type(result).__name__}, not a Volume")
    return result


def users(hv: Hypervisor, image: Image, volume: Volume | None) -> tuple[list[Volume], list[str]]:
    """(the volumes that read ``image``'s volume, the recorded linked ids that are gone)."""
    found: dict[str, Volume] = {}
    gone: list[str] = []
    for ref in image.linked:
        try:
            found[ref] = hv.volumes.get(ref)
        except NotFound:
            gone.append(ref)
    if volume is not None:
        marks = {volume.id, *([volume.path] if volume.path else [])}
        for other in hv.volumes.list():
            if other.backing in marks and other.id != volume.id:
                found.setdefault(other.id, other)
    return list(found.values()), gone


def refuse_if_used(hv: Hypervisor, image: Image, volume: Volume | None) -> list[str]:
    """Raise InvalidState when linked disks still read ``image``; else return the recorded ids that are gone."""
    linked, gone = users(hv, image, volume)
    if not linked:
        return gone
    ids = {v.id for v in linked} | {v.path for v in linked if v.path}
    vms = sorted(vm.name for vm in hv.vms.list(detail=True) if any({d.volume, d.path} & ids for d in vm.disks))
    used_by = f" of VMs {', '.join(vms)}" if vms else ""
    volumes = ", ".join(sorted(v.id for v in linked))
    raise InvalidState(f"image {image.name!r} is the base of linked disks{used_by} ({volumes}); delete them first")
