"""hvkit connection URLs -> libvirt URIs.

=====================================  ==========================================
hvkit URL                              libvirt URI
=====================================  ==========================================
``kvm:///system`` (also ``qemu://``)   ``qemu:///system``
``kvm:///session``                     ``qemu:///session``
``kvm+ssh://user@host/system``         ``qemu+ssh://user@host/system``
``kvm+tls://host/system``              ``qemu+tls://host/system``
``kvm+tcp://host:16509/system``        ``qemu+tcp://host:16509/system``
``libvirt://test/default``             ``test:///default`` (any driver: ``libvirt://DRIVER/PATH``)
``libvirt+ssh://user@host/qemu/system``  ``qemu+ssh://user@host/system``
any URL with option ``uri=...``        that URI as given
=====================================  ==========================================

``verify_tls=False`` adds libvirt's ``no_verify=1`` to a TLS URI; ``keyfile`` and ``known_hosts``
options pass through to SSH URIs.
"""

from __future__ import annotations

import urllib.parse

from ...driver import ConnectOptions
from ...errors import InvalidSpec

__all__ = ["is_local_uri", "libvirt_uri"]

_PASS_THROUGH = ("keyfile", "known_hosts", "known_hosts_verify", "no_tty", "sshauth", "socket", "mode", "pkipath")
_TRANSPORTS = {"ssh", "tls", "tcp", "unix", "libssh", "libssh2", "ext"}


def libvirt_uri(options: ConnectOptions) -> str:
    explicit = options.option("uri")
    if explicit:
        return str(explicit)
    url = options.url
    transport = url.transport
    if transport is not None and transport not in _TRANSPORTS:
        raise InvalidSpec(f"unknown libvirt transport {transport!r} (one of: {', '.join(sorted(_TRANSPORTS))})")
    path = url.path or "/system"
    if url.kind == "libvirt":
        if transport is None and url.host:  # libvirt://test/default -> test:///default
            driver, host = url.host, None
        else:
            driver, _, rest = path.lstrip("/").partition("/")
            if not driver:
                raise InvalidSpec(
                    "a libvirt URL names its driver: libvirt://DRIVER/PATH or libvirt+ssh://host/DRIVER/PATH"
                )
            path, host = "/" + rest, url.host
    else:
        driver, host = "qemu", url.host
        if path not in ("/system", "/session"):
            raise InvalidSpec(f"a kvm URL ends in /system or /session, not {path!r}")
    scheme = driver + (f"+{transport}" if transport else "")
    netloc = ""
    if url.username and host:
        netloc = urllib.parse.quote(url.username, safe="") + "@"
    if host:
        netloc += f"[{host}]" if ":" in host else host
        if url.port:
            netloc += f":{url.port}"
    query: dict[str, str] = {}
    for key in _PASS_THROUGH:
        value = options.option(key)
        if value is not None:
            query[key] = str(value)
    if transport == "tls" and not options.verify_tls:
        query["no_verify"] = "1"
    text = f"{scheme}://{netloc}{path}"
    if query:
        text += "?" + urllib.parse.urlencode(query)
    return text


def is_local_uri(uri: str) -> bool:
    """Whether ``uri`` reaches the libvirt daemon of this machine through its default socket.

    ``qemu:///system`` and ``qemu:///session`` are local; any host, any transport but ``unix``, or a
    ``socket=`` of its own (a daemon in other namespaces, whose paths may name other files) is not.
    """
    parsed = urllib.parse.urlsplit(uri)
    _, _, transport = parsed.scheme.partition("+")
    if transport not in ("", "unix") or parsed.hostname:
        return False
    return "socket" not in urllib.parse.parse_qs(parsed.query)
