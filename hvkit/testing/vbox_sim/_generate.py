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
    return {short: {sub: _table(data[sub][full]) for sub in SUBCOMMANDS} for short, full in VERSIONS.items()}


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
