"""Verified disk images: ``hv.images`` and the ``hvkit image`` command.

>>> image = hv.images.import_("debian-12", url, sums=sums_url, signature=sig_url, keyring="debian.gpg")
>>> hv.vms.create(hvkit.VMSpec(name="web-1", disks=[hvkit.DiskSpec(image="debian-12")]))  # a full copy
>>> hv.vms.create(hvkit.VMSpec(name="web-2", disks=[hvkit.DiskSpec(image="debian-12", linked=True)]))  # copy-on-write
>>> hv.images.verify("debian-12")

An image is imported from a file or an http(s) URL only with a checksum (sha256 / sha512, or a signed
``SHA256SUMS`` file), kept as a volume on the hypervisor, and recorded in the image catalogue with the
format-independent content checksum the migration engine uses (:func:`hvkit.migration.checksum`).
A linked disk reads the image's volume and writes into its own (backends with ``volume.linked``); an
image is not deleted while linked disks use it.
"""

from __future__ import annotations

from ..hypervisor import register_extension
from ._catalog import Catalog, Image, default_catalog_path
from ._errors import ImageChecksumMismatch, ImageError, SignatureError
from ._manager import Images, Verified

__all__ = [
    "Catalog",
    "Image",
    "ImageChecksumMismatch",
    "ImageError",
    "Images",
    "SignatureError",
    "Verified",
    "default_catalog_path",
]

register_extension("images", Images)
