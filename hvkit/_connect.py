"""hvkit.connect(): URL or profile -> a connected Hypervisor."""

from __future__ import annotations

from typing import Any

from . import _registry
from ._options import resolve
from ._secrets import install_redaction
from ._url import URL
from .hypervisor import Hypervisor

__all__ = ["connect"]


def connect(
    url: str | URL | None = None,
    *,
    profile: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    verify_tls: bool | None = None,
    ca_file: str | None = None,
    timeout: float | None = None,
    **backend_options: Any,
) -> Hypervisor:
    """Connect to a hypervisor and return a :class:`Hypervisor` (a context manager).

    Explicit arguments win over the URL, the URL over the profile, the profile over environment
    variables (``HVKIT_<KIND>_PASSWORD``, ``HVKIT_PASSWORD``, same for ``USERNAME`` and ``TOKEN``).
    ``verify_tls`` is on unless turned off here, in the URL (``?verify_tls=false``) or the profile.
    ``timeout`` (default 30 s) bounds every network call.
    """
    explicit = {
        "username": username,
        "password": password,
        "token": token,
        "verify_tls": verify_tls,
        "ca_file": ca_file,
        "timeout": timeout,
    }
    options = resolve(url, profile=profile, explicit=explicit, backend_options=backend_options)
    backend_cls = _registry.load(options.url.kind)
    install_redaction()  # the SDK is imported now: its loggers never show a secret, whatever their level
    backend = backend_cls(options)
    hv = Hypervisor(backend)
    with hv.translating("connect"):
        backend.connect()
    return hv
