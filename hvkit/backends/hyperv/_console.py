"""The console: VMConnect's address (RDP over the host's VMBus listener, TCP 2179)."""

from __future__ import annotations

from ...models import VM, Console
from ._session import Session

__all__ = ["console"]

VMCONNECT_PORT = 2179


def console(s: Session, vm: VM) -> Console:
    """Where ``vmconnect.exe <host> -G <vm id>`` (or an RDP client in enhanced session mode) connects."""
    return Console(protocol="rdp", host=s.host, port=VMCONNECT_PORT, url=f"vmconnect://{s.host}/{vm.id}")
