"""Host and networks: ``list hostinfo``; NAT, ``list bridgedifs``, ``list hostonlyifs``, ``list natnets``."""

from __future__ import annotations

from hvkit.models import Host, Network

from . import _parse
from ._session import Session

__all__ = ["list_hosts", "list_networks"]


def list_hosts(session: Session) -> list[Host]:
    info = _parse.key_value_blocks(session.run(["list", "hostinfo"]), "Host Information")
    row = {k: v for block in info for k, v in block.items()}
    name = session.host
    threads = int(row.get("Processor count", "1") or 1)
    mhz = row.get("Processor#0 speed", "").split(" ")[0]
    return [
        Host(
            id=name,
            name=name,
            cpu_sockets=1,
            cpu_cores=int(row.get("Processor core count", threads) or threads),
            cpu_threads=threads,
            memory_mib=int(row.get("Memory size", "0").split()[0]),
            hypervisor_kind="vbox",
            hypervisor_version=session.version_text,
            cpu_model=row.get("Processor#0 description", ""),
            cpu_mhz=int(mhz) if mhz.isdigit() else None,
            memory_used_mib=int(row.get("Memory size", "0").split()[0])
            - int(row.get("Memory available", "0").split()[0]),
            extra={"os": row.get("Operating system", ""), "os_version": row.get("Operating system version", "")},
        )
    ]


def list_networks(session: Session) -> list[Network]:
    run = session.run
    nets = [Network(id="nat", name="nat", type="nat")]
    for block in _parse.key_value_blocks(run(["list", "bridgedifs"]), "Name"):
        if block.get("Name"):
            nets.append(
                Network(
                    id=f"bridged:{block['Name']}",
                    name=block["Name"],
                    type="bridge",
                    bridge=block["Name"],
                    active=block.get("Status") == "Up",
                )
            )
    for block in _parse.key_value_blocks(run(["list", "hostonlyifs"]), "Name"):
        if block.get("Name"):
            nets.append(
                Network(
                    id=f"hostonly:{block['Name']}",
                    name=block["Name"],
                    type="hostonly",
                    active=block.get("Status") == "Up",
                    extra={"ip": block.get("IPAddress", ""), "mask": block.get("NetworkMask", "")},
                )
            )
    for block in _parse.key_value_blocks(run(["list", "natnets"]), "NetworkName"):
        if block.get("NetworkName"):
            nets.append(
                Network(
                    id=f"natnetwork:{block['NetworkName']}",
                    name=block["NetworkName"],
                    type="natnetwork",
                    active=block.get("Enabled") == "Yes",
                    extra={"network": block.get("Network", "")},
                )
            )
    return nets
