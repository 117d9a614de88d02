"""Integration tests of the Ansible collection: ansible-playbook runs the playbooks in playbooks/ against the
collection installed with ansible-galaxy from this repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "ansible_collections" / "hvkit" / "hypervisor"
PLAYBOOKS = Path(__file__).parent / "playbooks"
BIN = Path(sys.executable).parent


def ansible_tool(name: str) -> str:
    tool = BIN / name
    if not tool.exists():
        pytest.skip(f"{name} is not installed (pip install 'hvkit[ansible]')")
    return str(tool)


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection installed by ansible-galaxy from the repository, as a user would."""
    target = tmp_path_factory.mktemp("collections")
    done = subprocess.run(
        [ansible_tool("ansible-galaxy"), "collection", "install", "--force", str(COLLECTION), "-p", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "ansible_collections/hvkit/hypervisor/plugins/modules/vm.py").is_file()
    return target


class Playbook:
    """Runs playbooks with ansible-playbook; ``run`` returns the result with the recap parsed."""

    def __init__(self, collections: Path, workdir: Path) -> None:
        self.collections = collections
        self.workdir = workdir

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "tmp"),
            ANSIBLE_HOME=str(self.workdir / "ansible-home"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_DEPRECATION_WARNINGS="0",
        )
        return env

    def command(
        self, playbook: str, extra: dict[str, Any], inventory: str = "localhost,", args: tuple[str, ...] = ()
    ) -> list[str]:
        vars_file = self.workdir / "vars.json"
        if inventory == "localhost,":
            extra = {"ansible_python_interpreter": sys.executable, **extra}
        vars_file.write_text(json.dumps(extra))
        vars_file.chmod(0o600)
        playbook_path = playbook if Path(playbook).is_absolute() else str(PLAYBOOKS / playbook)
        cmd = [ansible_tool("ansible-playbook"), "-i", inventory, "-e", f"@{vars_file}", *args, playbook_path]
        if inventory == "localhost,":
            cmd[1:1] = ["-c", "local"]
        return cmd

    def run(
        self,
        playbook: str,
        extra: dict[str, Any],
        *,
        inventory: str = "localhost,",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> PlaybookRun:
        cmd = self.command(playbook, extra, inventory, args)
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**self.env(), **(env or {})}, timeout=1200, cwd=self.workdir
        )
        return PlaybookRun(done.returncode, done.stdout + done.stderr)

    def start(
        self, playbook: str, extra: dict[str, Any], *, inventory: str, args: tuple[str, ...] = (), env: dict[str, str]
    ) -> subprocess.Popen[str]:
        """The playbook running in the background (stdout and stderr together)."""
        cmd = self.command(playbook, extra, inventory, args)
        return subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env(), **env},
            cwd=self.workdir,
        )


class PlaybookRun:
    def __init__(self, rc: int, output: str) -> None:
        self.rc = rc
        self.output = output
        self.recap: dict[str, dict[str, int]] = {}
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
            self.recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}

    def check(self) -> PlaybookRun:
        assert self.rc == 0, self.output[-6000:]
        assert self.recap, self.output[-3000:]
        assert all(c.get("failed", 0) == 0 and c.get("unreachable", 0) == 0 for c in self.recap.values()), self.output
        return self


@pytest.fixture
def playbook(collections_path: Path, tmp_path: Path) -> Iterator[Playbook]:
    (tmp_path / "tmp").mkdir()
    yield Playbook(collections_path, tmp_path)
    shutil.rmtree(tmp_path / "ansible-home", ignore_errors=True)
