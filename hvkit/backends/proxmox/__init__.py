"""Proxmox VE backend (``proxmox://root@pam@pve1:8006``), built on proxmoxer's HTTPS backend."""

from __future__ import annotations

from .backend import ProxmoxBackend

__all__ = ["ProxmoxBackend"]
