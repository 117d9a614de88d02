"""libvirt consoles (VNC/SPICE), guest IPs and the serial log."""

from __future__ import annotations

from collections.abc import Callable

import libvirt

from ...errors import Unsupported
from ...models import (
    VM,
    Console,
)
from . import _domxml
from ._session import (
    KvmSession,
)


def console(session: KvmSession, vm: VM) -> Console:
    dom = session.domain(vm)
    info = _domxml.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
    if info.vnc is None or info.vnc[1] is None:
        raise Unsupported(session.kind, "vms.console", f"VM {vm.name!r} has no VNC display")
    listen, port, password = info.vnc
    host = listen if listen and listen not in ("0.0.0.0", "::") else session._host_name
    return Console(protocol="vnc", host=host, port=port, url=f"vnc://{host}:{port}", password=password)


def guest_ips(session: KvmSession, vm: VM) -> list[str]:
    dom = session.domain(vm)
    if not dom.isActive():
        return []
    found: list[str] = []
    sources = [libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT]
    for source in sources:
        try:
            ifaces = dom.interfaceAddresses(source, 0)
        except libvirt.libvirtError:  # no guest agent, or no lease support
            continue
        for name, iface in (ifaces or {}).items():
            if name == "lo":
                continue
            for addr in iface.get("addrs") or []:
                ip = addr.get("addr")
                if ip and not ip.startswith(("127.", "fe80:", "::1")) and ip not in found:
                    found.append(ip)
    return found


def read_serial(session: KvmSession, vm: VM) -> Callable[[], str]:
    """Open the VM's serial console through libvirt; the returned function gives everything read so far."""
    dom = session.domain(vm)
    stream = session.conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
    dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    chunks: list[bytes] = []

    def read() -> str:
        while True:
            try:
                data = stream.recv(65536)
            except libvirt.libvirtError:
                break
            if data == -2 or not data or not isinstance(data, bytes):
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    return read
