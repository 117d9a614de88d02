"""The README's Python example, run verbatim with only the connection URL changed (every backend's suite)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import attrs

README = Path(__file__).resolve().parents[1] / "README.md"
SIM_CONNECT = 'hvkit.connect("sim://")'


def readme_example() -> str:
    """The first ```python block of README.md."""
    found = re.search(r"^```python\n(.*?)^```", README.read_text(), re.DOTALL | re.MULTILINE)
    assert found, "README.md has no python example"
    return found.group(1)


def run_readme_example(url: str = "sim://") -> str:
    """Run the example against ``url`` (credentials and CA file from the environment or the URL); its output."""
    code = readme_example()
    assert code.count(SIM_CONNECT) == 1, "the README example connects once, to sim://"
    code = code.replace(SIM_CONNECT, f"hvkit.connect({url!r})")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    return out.getvalue()


def check_output(output: str, kind: str) -> None:
    """What the example prints: the backend, then web-1 running (reverted to a memory snapshot) and web-2."""
    lines = output.splitlines()
    assert lines[0].startswith(f"{kind} "), output
    rows = {line.split()[0]: line.split()[1] for line in lines[1:] if line.split()[0] in ("web-1", "web-2")}
    assert rows == {"web-1": "running", "web-2": "stopped"}, output


DOCS = [README, *sorted((README.parent / "docs").rglob("*.md"))]
_BLOCK = re.compile(
    r"(?:^<!-- docs-test: (?P<marker>[^>]*?) -->\n)?^```(?P<lang>\w*)\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE
)
# URLs of hypervisors in the examples (string literals): replaced by a test URL where an example runs
URL_LITERAL = re.compile(r"""(?P<q>["'])(?:kvm|qemu|vcenter|esxi|proxmox|libvirt)(?:\+\w+)?://[^"']*(?P=q)""")


@attrs.frozen
class DocBlock:
    """One fenced code block of README.md or docs/, with the ``<!-- docs-test: ... -->`` marker right above it."""

    path: Path
    line: int
    lang: str
    marker: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(README.parent)}:{self.line}"


def doc_blocks(marker: str | None = None) -> list[DocBlock]:
    """Every code block of README.md and docs/ (only those with ``marker`` when given)."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in _BLOCK.finditer(text):
            line = text.count("\n", 0, m.start("lang")) + 1
            block = DocBlock(path, line, m.group("lang"), (m.group("marker") or "").strip(), m.group("code"))
            if marker is None or block.marker.split()[:1] == [marker]:
                out.append(block)
    return out


def run_block(
    block: DocBlock,
    urls: Callable[[str], str],
    namespace: dict[str, object] | None = None,
    keywords: dict[str, object] | None = None,
) -> str:
    """Run a Python block with each hypervisor URL literal replaced by ``urls(literal)`` and each string given
    to a keyword argument of ``keywords`` (e.g. ``token="..."``) replaced by its value; its output."""
    code = URL_LITERAL.sub(lambda m: repr(urls(m.group(0)[1:-1])), block.code)
    for keyword, value in (keywords or {}).items():
        code = re.sub(rf"""\b{keyword}=(["'])[^"']*\1""", f"{keyword}={value!r}".replace("\\", "\\\\"), code)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, block.where, "exec"), {"__name__": "docs_example", **(namespace or {})})
    return out.getvalue()
