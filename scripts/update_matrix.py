"""Rewrite the generated tables from the code: the support matrix (README.md, docs/support-matrix.md) and the
portability table (docs/portability.md). ``--check`` rewrites nothing and fails when a table is stale."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from hvkit._matrix import matrix_markdown, portability_markdown

ROOT = Path(__file__).resolve().parent.parent
TABLES: dict[str, tuple[Callable[[], str], list[Path]]] = {
    "support-matrix": (matrix_markdown, [ROOT / "README.md", ROOT / "docs" / "support-matrix.md"]),
    "portability": (portability_markdown, [ROOT / "docs" / "portability.md"]),
}


def render(text: str, block: str, table: str) -> str:
    pattern = re.compile(rf"(<!-- {block}:start -->\n).*?(<!-- {block}:end -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- {block}:start --> ... <!-- {block}:end --> block")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text)


def stale_files() -> dict[Path, str]:
    """Every file whose generated block differs from the code, with its new text."""
    out: dict[Path, str] = {}
    for block, (make, files) in TABLES.items():
        table = make()
        for path in files:
            text = out.get(path, path.read_text())
            new = render(text, block, table)
            if new != path.read_text():
                out[path] = new
    return out


if __name__ == "__main__":
    stale = stale_files()
    if "--check" in sys.argv:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        sys.exit(f"stale generated tables in: {names} (run scripts/update_matrix.py)" if stale else 0)
    for path, text in stale.items():
        path.write_text(text)
