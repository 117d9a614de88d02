"""Hyper-V backend: the Hyper-V PowerShell module over WinRM (pywinrm). ``pip install 'hvkit[hyperv]'``."""

from __future__ import annotations

from .backend import HyperVBackend

__all__ = ["HyperVBackend"]
