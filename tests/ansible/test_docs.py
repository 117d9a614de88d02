"""The module pages under docs/ansible/ say what the modules' DOCUMENTATION blocks say."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_module_pages_are_current() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/gen_ansible_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_module_has_a_page() -> None:
    modules = {p.stem for p in (ROOT / "ansible_collections/hvkit/hypervisor/plugins/modules").glob("*.py")}
    pages = {p.stem for p in (ROOT / "docs/ansible").glob("*.md")}
    assert modules <= pages
    assert {"vm", "vm_info", "snapshot", "volume", "migrate", "fleet_plan", "fleet_execute"} <= modules
