"""Rewrite the support matrix in README.md and docs/support-matrix.md from the code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from hvkit._matrix import matrix_markdown

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", ROOT / "docs" / "support-matrix.md"]
BLOCK = re.compile(r"(<!-- support-matrix:start -->\n).*?(<!-- support-matrix:end -->)", re.DOTALL)


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + matrix_markdown() + m.group(2), text)


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = [f for f in FILES if render(f.read_text()) != f.read_text()]
    if check:
        sys.exit(f"stale support matrix in: {', '.join(map(str, stale))}" if stale else 0)
    for f in stale:
        f.write_text(render(f.read_text()))
