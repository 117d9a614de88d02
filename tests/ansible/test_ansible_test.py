"""Ansible's own checks of the collection: ``ansible-test sanity`` and ``ansible-test units``, each in the
virtualenvs ansible-test makes (their pip bootstrap is the stand-in scripts/setup.d/70-ansible.sh writes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import COLLECTION, ansible_tool

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def ansible_test(*args: str) -> str:
    tool = ansible_tool("ansible-test")
    if not list((Path.home() / ".ansible/test/cache").glob("get_pip_*.py")):
        pytest.fail("ansible-test's pip bootstrap stand-in is missing: source scripts/setup.d/70-ansible.sh")
    done = subprocess.run(
        [tool, *args, "--venv", "--python", PYTHON, "--color", "no"],
        cwd=COLLECTION,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    return output


@pytest.mark.slow
def test_sanity() -> None:
    output = ansible_test("sanity")
    ran = re.findall(r'^Running sanity test "([\w-]+)"', output, re.M)
    assert {"validate-modules", "pylint", "import", "ansible-doc", "yamllint", "compile"} <= set(ran), output[-3000:]


@pytest.mark.slow
def test_units() -> None:
    output = ansible_test("units")
    passed = sum(int(n) for n in re.findall(r"=+ (\d+) passed", output))
    assert passed >= 30 and " failed" not in output, output[-3000:]
