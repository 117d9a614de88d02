"""The README's Python example, run verbatim with only the connection URL changed (every backend's suite)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

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
