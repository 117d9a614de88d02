"""vSphere console tickets and guest IPs."""

from __future__ import annotations

from ...models import (
    VM,
    Console,
)
from ._session import (
    VmwareSession,
    log,
    vim,
    vmodl,
)


def console(session: VmwareSession, vm: VM) -> Console:
    obj = session.ref(vim.VirtualMachine, vm.id)
    try:
        ticket = obj.AcquireTicket("webmks")
    except (vmodl.MethodFault, vmodl.fault.MethodNotFound) as exc:
        log.debug("no WebMKS ticket (%s); offering a VMRC URL", type(exc).__name__)
    else:
        host = ticket.host or session.options.url.host
        port = ticket.port or 443
        return Console(
            protocol="webmks",
            host=host,
            port=port,
            url=f"wss://{host}:{port}/ticket/{ticket.ticket}",
            password=ticket.ticket,
        )
    clone = session.content.sessionManager.AcquireCloneTicket()
    host = session.options.url.host or ""
    port = session.options.url.port or 443
    netloc = host if port == 443 else f"{host}:{port}"
    return Console(
        protocol="vmrc", host=host, port=port, url=f"vmrc://clone:{clone}@{netloc}/?moid={vm.id}", password=clone
    )


def guest_ips(session: VmwareSession, vm: VM) -> list[str]:
    return list(vm.ip_addresses)
