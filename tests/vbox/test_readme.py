"""The README example runs verbatim on the VirtualBox stand-in (only the URL changed)."""

from __future__ import annotations

import subprocess

import pytest

from hvkit.testing.vbox_sim import VBoxSim
from tests.readme_example import check_output, run_readme_example


@pytest.fixture
def readme_host(sim: VBoxSim) -> VBoxSim:
    """The stand-in host with a NAT network called 'default', added as a VirtualBox admin would."""
    add = ["VBoxManage", "natnetwork", "add", "--netname", "default", "--network", "10.0.9.0/24", "--enable"]
    subprocess.run(add, check=True, capture_output=True, text=True, timeout=60)
    return sim


def test_readme_example_runs_verbatim(readme_host: VBoxSim) -> None:
    check_output(run_readme_example("vbox:///"), "vbox")
    state = readme_host.state()
    web1 = next(vm for vm in state["vms"] if vm["name"] == "web-1")
    assert [s["name"] for s in web1["snapshots"]] == ["before-upgrade"]  # no linked clone base left behind
    assert not any(vm["name"] == "web-2" for vm in state["vms"])
