"""README and docs agree with the code; the documented CLI and set-up commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hvkit._matrix import backend_capabilities

ROOT = Path(__file__).resolve().parents[2]


def test_support_matrix_matches_the_code() -> None:
    missing = [k for k, v in backend_capabilities().items() if isinstance(v, ImportError)]
    if missing:
        pytest.skip(f"backends not installed here: {missing}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update_matrix.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_readme_gives_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up on a fresh Debian/Ubuntu machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^    (\S.*)$", section, re.MULTILINE)
    assert commands == ["bash scripts/demo.sh", "bash scripts/test-all.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test-all.sh" in ci
    for script in ("scripts/demo.sh", "scripts/test-all.sh"):
        assert (ROOT / script).is_file()
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_no_machine_paths_in_the_project() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "tests/core/test_docs.py":  # this file names the patterns
            continue
        text_file = path.suffix in {".py", ".md", ".sh", ".toml", ".yml", ".go", ".packages"} and path.is_file()
        if text_file and re.search(r"/work/main|/root/|/tmp/hvkit", path.read_text(errors="ignore")):
            offenders.append(name)
    assert offenders == []
