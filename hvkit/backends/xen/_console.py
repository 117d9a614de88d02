"""Consoles: the VM's RFB (VNC over XAPI's HTTP CONNECT) console record."""

from __future__ import annotations

import urllib.parse

from ...errors import NotFound
from ...models import VM, Console
from ._session import XapiSession
from ._vms import ref_of

__all__ = ["console"]


def console(s: XapiSession, vm: VM) -> Console:
    """The VNC console: its location on the host that runs the VM (connect with the session as a cookie)."""
    for ref in s.call("VM.get_consoles", ref_of(s, vm)):
        rec = s.call("console.get_record", ref)
        if rec["protocol"] == "rfb":
            url = urllib.parse.urlsplit(rec["location"])
            return Console(protocol="vnc", host=url.hostname, port=url.port or 443, url=rec["location"])
    raise NotFound(f"VM {vm.name!r} has no VNC console (is it running?)")
