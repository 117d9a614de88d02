"""The collection is ruff-clean under the repository's settings (its ruff.toml adds Ansible's conventions)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import COLLECTION


def test_collection_is_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra)")
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run([ruff, *args, str(COLLECTION)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
