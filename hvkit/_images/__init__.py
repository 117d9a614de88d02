"""Disk images on this machine: the qemu-img runner, image facts (info / map), conversion, a sparse writer
and the default disk export/import. Below the driver contract: drivers and migration both use it."""

from ._disk import (
    IN_FILE_OFFSETS,
    Extent,
    SparseWriter,
    allocated_bytes,
    convert_image,
    default_export,
    default_import,
    image_info,
    image_map,
    partial_path,
    probe_format,
    write_into,
)
from ._qemuimg import qemu_img
from ._ssh import SshNode, ssh_export

__all__ = [
    "IN_FILE_OFFSETS",
    "Extent",
    "SparseWriter",
    "SshNode",
    "allocated_bytes",
    "convert_image",
    "default_export",
    "default_import",
    "image_info",
    "image_map",
    "partial_path",
    "probe_format",
    "qemu_img",
    "ssh_export",
    "write_into",
]
