"""Fixtures: the stand-in VBoxManage (hvkit.testing.vbox_sim) on PATH, with its state in a temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.vbox_sim import VBoxSim

if shutil.which("qemu-img") is None:
    pytest.skip(
        "the VirtualBox stand-in writes disk images with qemu-img (apt-get install qemu-utils)", allow_module_level=True
    )

FAST: dict[str, Any] = {"lock_backoff": 0.01}  # lock retries without real pauses


def on_path(sim: VBoxSim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{sim.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(params=["7.0", "6.1"])
def sim(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VBoxSim:
    """A stand-in host of each emulated version, its VBoxManage first on PATH."""
    stand_in = VBoxSim(tmp_path / "vbox", version=request.param)
    on_path(stand_in, monkeypatch)
    return stand_in


@pytest.fixture
def hv(sim: VBoxSim) -> Iterator[Hypervisor]:
    with hvkit.connect("vbox:///", **FAST) as conn:
        yield conn
