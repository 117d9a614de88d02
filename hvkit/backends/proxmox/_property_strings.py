"""Proxmox property strings (``virtio,bridge=vmbr0,firewall=1``) and volume ids (``local-lvm:vm-100-disk-0``)."""

from __future__ import annotations

import re

__all__ = ["DNS_NAME", "parse", "parse_drive", "parse_net", "size_bytes"]

DNS_NAME = re.compile(r"(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)")
SNAPSHOT_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
TAG = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.I)
NET_MODELS = {
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
}


def parse(text: str, default_key: str) -> dict[str, str]:
    """Split ``a,k=v,...``; a bare first item is the ``default_key``."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if eq:
            out[key] = value
        else:
            out[default_key] = part
    return out


def parse_drive(text: str) -> dict[str, str]:
    return parse(text, "file")


def parse_net(text: str) -> dict[str, str]:
    """``virtio=BC:24:11:..,bridge=vmbr0`` -> {model, macaddr, bridge, ...}."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if key in NET_MODELS:
            out["model"] = key
            if eq:
                out["macaddr"] = value
        elif eq:
            out[key] = value
    return out


def size_bytes(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    try:
        return int(float(text))
    except ValueError:
        return 0
