"""Proxmox VNC tickets and guest-agent IPs."""

from __future__ import annotations

import urllib.parse

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...models import (
    VM,
    Console,
)
from ._errors import translate
from ._session import (
    ProxmoxSession,
)


def console(session: ProxmoxSession, vm: VM) -> Console:
    with translate():
        data = session.qemu(vm).vncproxy.post(websocket=1)
    port = int(data["port"])
    host = session.options.url.host
    query = urllib.parse.urlencode({"port": port, "vncticket": data["ticket"]})
    url = f"wss://{host}:{session.options.url.port or 8006}/api2/json/nodes/{vm.host}/qemu/{vm.id}/vncwebsocket?{query}"
    return Console(protocol="vnc", host=host, port=port, url=url, password=str(data["ticket"]))


def guest_ips(session: ProxmoxSession, vm: VM) -> list[str]:
    with translate():
        data = session.qemu(vm).agent("network-get-interfaces").get()
    ips = []
    for iface in data.get("result", []):
        if iface.get("name") == "lo":
            continue
        for addr in iface.get("ip-addresses", []):
            ip = str(addr.get("ip-address", ""))
            if ip and not ip.startswith(("127.", "fe80:")) and ip != "::1":
                ips.append(ip)
    return ips
