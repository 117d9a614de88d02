"""Console: the VM's VRDE (remote desktop) server, and the guest's IPs from its guest properties."""

from __future__ import annotations

import ipaddress
import re

from hvkit import errors
from hvkit.models import VM, Console

from . import _parse
from ._session import Session

__all__ = ["console", "guest_ips"]

_IP_KEY = re.compile(r"^/VirtualBox/GuestInfo/Net/\d+/V[46]/IP$")


def console(session: Session, vm: VM) -> Console:
    values = _parse.machinereadable(session.run(["showvminfo", vm.id, "--machinereadable"]))
    if values.get("vrde") != "on":
        raise errors.InvalidState(
            f"VM {vm.name!r} has no remote display: turn VRDE on (VBoxManage modifyvm {vm.name} --vrde on) "
            "and install the VirtualBox Extension Pack for RDP"
        )
    port = int(values.get("vrdeport", "-1") or -1)
    if port <= 0:
        raise errors.InvalidState(f"VM {vm.name!r}'s VRDE server is not listening (is the VM running?)")
    address = values.get("vrdeaddress", "")
    if not address or address in ("0.0.0.0", "::"):
        address = session.host
    return Console(protocol="rdp", host=address, port=port)


def guest_ips(session: Session, vm: VM) -> list[str]:
    """Addresses the Guest Additions report (6.1: ``--patterns``; 7.0: patterns as arguments)."""
    pattern = "/VirtualBox/GuestInfo/Net/*"
    args = ["guestproperty", "enumerate", vm.id] + ([pattern] if session.v7 else ["--patterns", pattern])
    props = _parse.guest_properties(session.run(args))
    out = []
    for key in sorted(props):
        if _IP_KEY.match(key):
            try:
                out.append(str(ipaddress.ip_address(props[key])))
            except ValueError:
                continue
    return out
