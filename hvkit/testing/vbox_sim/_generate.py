"""Build ``options.json``, the stand-in's compact option table, from the reference option data.

Run once when the reference changes::

    python -m hvkit.testing.vbox_sim._generate <reference>/virtualbox/vboxmanage-options.json

Only the subcommands the stand-in serves are kept, each option mapped to whether it takes a value
(``"v"``) or not (``"-"``); indexed options (``--nic<N>``) are listed apart, and ``controlvm`` keeps its
keywords. The reference folder is read here only, never at run time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

VERSIONS = {"6.1": "6.1.36", "7.0": "7.0.10"}
SUBCOMMANDS = (
    "createvm",
    "unregistervm",
    "modifyvm",
    "startvm",
    "controlvm",
    "showvminfo",
    "list",
    "snapshot",
    "clonevm",
    "import",
    "export",
    "createmedium",
    "clonemedium",
    "storageattach",
    "storagectl",
    "closemedium",
    "showmediuminfo",
)
OUT = Path(__file__).with_name("options.json")

# ``natnetwork`` is not in the reference data: its table (g_aNATNetworkIPOptions of VBoxManageNATNetwork.cpp) is
# kept here. 7.0 added the new spellings (--ipv4-prefix, --ipv6-enable) and --ipv6-default / --ipv6-prefix, and
# ``natnetwork list``; ``remove`` (and start / stop) accept only the table's first four entries.
_NATNET_6 = ["--netname", "--network", "--dhcp", "--ipv6", "--enable", "--disable", "--port-forward-4",
             "--port-forward-6", "--loopback-4", "--loopback-6"]  # fmt: skip
_NATNET_7 = ["--netname", "--network", "--ipv4-prefix", "--dhcp", "--ipv6", "--ipv6-default", "--ipv6-enable",
             "--ipv6-prefix", "--enable", "--disable", "--port-forward-4", "--port-forward-6", "--loopback-4",
             "--loopback-6"]  # fmt: skip
_NATNET_OPS = {"6.1": ["add", "remove", "modify", "start", "stop"], "7.0": ["add", "list", "modify", "remove", "start",
               "stop"]}  # fmt: skip
_NATNET_USAGE = [
    "VBoxManage natnetwork add [--disable | --enable] --netname=<name> --network=<network> [--dhcp=on|off] "
    "[--ipv6=on|off] [--loopback-4=<rule>] [--loopback-6=<rule>] [--port-forward-4=<rule>] [--port-forward-6=<rule>]",
    "VBoxManage natnetwork list [<filter-pattern>]",
    "VBoxManage natnetwork modify [--dhcp=on|off] [--disable | --enable] --netname=<name> --network=<network> "
    "[--ipv6=on|off] [--loopback-4=<rule>] [--loopback-6=<rule>] [--port-forward-4=<rule>] [--port-forward-6=<rule>]",
    "VBoxManage natnetwork remove --netname=<name>",
    "VBoxManage natnetwork start --netname=<name>",
    "VBoxManage natnetwork stop --netname=<name>",
]


# ``getextradata`` / ``setextradata`` parse their arguments by position (no getopt table in VBoxManageMisc.cpp):
# the table is empty, so an option-looking argument is refused, and keeps the synopses for the usage text.
_EXTRADATA = {
    "getextradata": ["VBoxManage getextradata <global | <uuid | vmname>> <keyword | enumerate>"],
    "setextradata": ["VBoxManage setextradata <global | <uuid | vmname>> <keyword> [<value>]"],
}


def _natnetwork(short: str) -> dict[str, Any]:
    names = _NATNET_6 if short == "6.1" else _NATNET_7
    value = {"--enable": "-", "--disable": "-"}
    return {
        "options": dict(sorted((name, value.get(name, "v")) for name in names)),
        "remove_options": names[:4],
        "operations": _NATNET_OPS[short],
        "usage": [line for line in _NATNET_USAGE if short != "6.1" or " list " not in line],
    }


def _table(entry: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, str] = {}
    for opt in entry.get("accepted_options_source", []):
        takes_value = not opt["arg"].startswith("RTGETOPT_REQ_NOTHING")
        options[opt["option"]] = "v" if takes_value else "-"
    table: dict[str, Any] = {"options": dict(sorted(options.items()))}
    indexed = sorted(entry.get("indexed_options_source", []))
    if indexed:
        table["indexed"] = indexed
    keywords = entry.get("subcommand_keywords_from_source")
    if keywords:
        table["keywords"] = keywords
    synopses = entry.get("doc_synopses")
    if synopses:
        table["usage"] = synopses
    return table


def generate(source: Path) -> dict[str, Any]:
    data = json.loads(source.read_text())
    return {
        short: {
            **{sub: _table(data[sub][full]) for sub in SUBCOMMANDS},
            "natnetwork": _natnetwork(short),
            **{sub: {"options": {}, "usage": usage} for sub, usage in _EXTRADATA.items()},
        }
        for short, full in VERSIONS.items()
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    table = generate(Path(argv[0]))
    OUT.write_text(json.dumps(table, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
