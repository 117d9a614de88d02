"""VirtualBox through VBoxManage, here or over SSH; no SDK needed."""

from .backend import VBoxBackend

__all__ = ["VBoxBackend"]
