"""``natnetwork add | remove | list``: NAT networks as VBoxManageNATNetwork.cpp handles them.

Options are checked against the version's ``natnetwork`` table (``remove`` accepts only its first four
entries); a mistake is a syntax error (usage, exit 2), a missing or duplicate network an argument error
(exit 1). ``natnetwork list`` exists from 7.0 on (6.1 lists with ``list natnets``).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Any

from ._cli import PROG, Args, SimExit, api_error, syntax_error, table
from ._state import Sim

__all__ = ["NET_COMMANDS"]

_TRUE = {"on", "yes", "true", "1", "enable", "enabled"}
_FALSE = {"off", "no", "false", "0", "disable", "disabled"}


def _argument_error(message: str) -> SimExit:
    return SimExit(1, f"{PROG}: error: {message}\n")


def _bool(sim: Sim, name: str, value: str) -> str:
    if value.lower() in _TRUE:
        return "Yes"
    if value.lower() in _FALSE:
        return "No"
    raise syntax_error(sim.version, "natnetwork", f"{name}: Invalid boolean value: '{value}'")


def _once(sim: Sim, args: Args, *names: str) -> str | None:
    given = [value for name, value, _ in args.options if name in names]
    if len(given) > 1:
        raise syntax_error(sim.version, "natnetwork", f"You can only specify {names[0]} only once.")
    return given[0] if given else None


def _find(sim: Sim, name: str) -> dict[str, Any] | None:
    return next((net for net in sim.state["natnets"] if net["name"] == name), None)


def natnetwork(sim: Sim, args: Args) -> str:
    spec = table()[sim.version]["natnetwork"]
    if not args.positional:
        raise syntax_error(sim.version, "natnetwork", "Not enough parameters")
    op, extra = args.positional[0], args.positional[1:]
    if op not in spec["operations"]:
        raise syntax_error(sim.version, "natnetwork", f"Invalid parameter '{op}'")
    if op == "list":
        return _list(sim, args, extra)
    if extra:
        raise syntax_error(sim.version, "natnetwork", f"Invalid parameter '{extra[0]}'")
    if not args.options:
        raise syntax_error(sim.version, "natnetwork", "Not enough parameters")
    if op in ("remove", "start", "stop"):
        allowed = set(spec["remove_options"])
        for name, _, _ in args.options:
            if name not in allowed:
                raise syntax_error(sim.version, "natnetwork", f"Unknown option: {name}")
    netname = _once(sim, args, "--netname")
    if not netname:
        raise syntax_error(sim.version, "natnetwork", "You need to specify the --netname option")
    if op == "add":
        return _add(sim, args, netname)
    net = _find(sim, netname)
    if net is None:
        raise _argument_error("NATNetwork server does not exist")
    if op == "remove":
        sim.state["natnets"].remove(net)
    return ""  # modify, start and stop change nothing the stand-in shows


def _add(sim: Sim, args: Args, name: str) -> str:
    cidr = _once(sim, args, "--network", "--ipv4-prefix")
    if cidr is None:
        raise syntax_error(sim.version, "natnetwork", "You need to specify the --network option")
    enabled = [n for n, _, _ in args.options if n in ("--enable", "--disable")]
    if len(enabled) > 1:
        raise syntax_error(sim.version, "natnetwork", "You can specify either --enable or --disable once.")
    dhcp, ipv6 = _once(sim, args, "--dhcp"), _once(sim, args, "--ipv6", "--ipv6-enable")
    if _find(sim, name) is not None:
        raise _argument_error("NATNetwork server already exists")
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise SimExit(
            1,
            api_error(
                f"Invalid IPv4 prefix '{cidr}'",
                "E_INVALIDARG",
                "0x80070057",
                "NATNetworkWrap",
                "INATNetwork",
                "COMSETTER(Network)(Bstr(pPrefixIPv4).raw())",
            ).stderr
            + f"{PROG}: error: Failed to set configuration\n",
        ) from None
    sim.state["natnets"].append(
        {
            "name": name,
            "ip": str(network.network_address + 1),
            "network": str(network),
            "ipv6": _bool(sim, "--ipv6", ipv6) if ipv6 is not None else "No",
            "prefix": "",
            "dhcp": _bool(sim, "--dhcp", dhcp) if dhcp is not None else "Yes",
            "enabled": "No" if enabled == ["--disable"] else "Yes",
            "loopback": [],
        }
    )
    return ""


def _list(sim: Sim, args: Args, extra: list[str]) -> str:
    if args.options:
        raise syntax_error(sim.version, "natnetwork", f"Unknown option: {args.options[0][0]}")
    pattern = extra[0] if extra else "*"
    out = ["NAT Networks:\n\n"]
    found = 0
    for net in sim.state["natnets"]:
        if not fnmatch.fnmatchcase(net["name"], pattern):
            continue
        found += 1
        lines = [
            f"Name:         {net['name']}",
            f"Enabled:      {net['enabled']}",
            f"Network:      {net['network']}",
            f"Gateway:      {net['ip']}",
            f"DHCP Server:  {net['dhcp']}",
            f"IPv6:         {net['ipv6']}",
            f"IPv6 Prefix:  {net['prefix']}",
            "IPv6 Default: No",
        ]
        if net.get("loopback"):
            lines.append("loopback mappings (ipv4)")
            lines += [f"        {m}" for m in net["loopback"]]
        out.append("\n".join(lines) + "\n\n")
    out.append(f"{found} {'network' if found == 1 else 'networks'} found\n")
    return "".join(out)


NET_COMMANDS = {"natnetwork": natnetwork}
