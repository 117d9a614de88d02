"""XenServer / XCP-ng backend through XAPI (the XenAPI client from PyPI)."""

from .backend import XenBackend

__all__ = ["XenBackend"]
