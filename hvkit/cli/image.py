"""``hvkit image``: import verified disk images, list, verify and delete them.

    hvkit image import debian-12 https://cloud.debian.org/.../debian-12-generic-amd64.qcow2 \\
        --sums https://cloud.debian.org/.../SHA512SUMS --signature .../SHA512SUMS.sign \\
        --keyring /usr/share/keyrings/debian-archive-keyring.gpg
    hvkit image verify debian-12
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ..images import Images
from ._common import emit, open_hv

__all__ = ["register"]

_COLUMNS: list[tuple[str, Callable[[Any], object]]] = [
    ("NAME", lambda i: i.name),
    ("VOLUME", lambda i: i.volume),
    ("FORMAT", lambda i: i.format),
    ("SIZE", lambda i: i.size_bytes),
    ("DIGEST", lambda i: i.digest[:23] + "..."),
    ("SIGNED BY", lambda i: i.signed_by),
    ("SOURCE", lambda i: i.source),
]


def register(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``image`` (import, list, verify, delete) to ``subparsers``; return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "image", parents=[common], help="import verified disk images, list, verify and delete them"
    )
    sub = p.add_subparsers(dest="image_command", required=True, metavar="ACTION")

    def command(name: str, help: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=help, description=help)
        c.add_argument("--catalog", metavar="FILE", help="the image catalogue (default: $HVKIT_IMAGE_CATALOG, else "
                       "~/.local/share/hvkit/images.json)")  # fmt: skip
        c.set_defaults(func=fn)
        return c

    imp = command("import", "fetch an image (file or http(s) URL), check its checksum, import it", _import)
    imp.add_argument("name", help="the image's name (DiskSpec(image=NAME))")
    imp.add_argument("source", help="a disk image (qcow2, raw, vmdk, vhdx, ...) or an OVA: a file or an http(s) URL")
    way = imp.add_mutually_exclusive_group(required=True)
    way.add_argument("--sha256", metavar="HEX")
    way.add_argument("--sha512", metavar="HEX")
    way.add_argument("--sums", metavar="FILE|URL", help="a SHA256SUMS / SHA512SUMS file (needs --signature, --keyring)")
    imp.add_argument("--signature", metavar="FILE|URL", help="the checksum file's detached OpenPGP signature")
    imp.add_argument("--keyring", metavar="FILE", help="the keyring whose keys may sign the checksum file")
    imp.add_argument("--pool", help="the storage pool (default: the hypervisor's default)")
    imp.add_argument("--format", help="the volume's format (default: what the pool prefers)")
    imp.add_argument("--timeout", type=float, default=600.0, help="network timeout in seconds (default 600)")
    imp.add_argument("--ca-file", help="CA bundle to check an https source with")
    command("list", "list the images of the hypervisor", _list)
    ver = command("verify", "read an image back and compare its content checksum with the recorded one", _verify)
    ver.add_argument("name")
    dele = command("delete", "delete an image's volume and its catalogue record", _delete)
    dele.add_argument("name")
    return p


def _images(args: argparse.Namespace) -> tuple[Any, Images]:
    hv = open_hv(args)
    return hv, Images(hv, getattr(args, "catalog", None))


def _import(args: argparse.Namespace) -> int:
    hv, images = _images(args)
    with hv:
        image = images.import_(
            args.name,
            args.source,
            sha256=args.sha256,
            sha512=args.sha512,
            sums=args.sums,
            signature=args.signature,
            keyring=args.keyring,
            pool=args.pool,
            format=args.format,
            timeout=args.timeout,
            ca_file=args.ca_file,
        )
    emit(args, [image], _COLUMNS)
    return 0


def _list(args: argparse.Namespace) -> int:
    hv, images = _images(args)
    with hv:
        emit(args, images.list(), _COLUMNS)
    return 0


def _verify(args: argparse.Namespace) -> int:
    hv, images = _images(args)
    with hv:
        result = images.verify(args.name)
    emit(args, [result], [("NAME", lambda r: r.image.name), ("CHECKSUM", lambda r: r.checksum),
                          ("DATA BYTES", lambda r: r.data_bytes), ("SECONDS", lambda r: r.seconds)])  # fmt: skip
    if not getattr(args, "json", False):
        sys.stdout.write(f"image {args.name!r} is intact\n")
    return 0


def _delete(args: argparse.Namespace) -> int:
    hv, images = _images(args)
    with hv:
        images.delete(args.name)
    return 0
