"""The README example runs verbatim on the Hyper-V host model (only the URL changed)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest

from hvkit.testing.hyperv_sim import HyperVHost
from tests.readme_example import check_output, run_readme_example


@pytest.fixture(scope="module")
def readme_host() -> Iterator[HyperVHost]:
    """A host with a switch called 'default', as the README names its network."""
    with HyperVHost(switches=("default",)) as host:
        yield host


def test_readme_example_runs_verbatim(readme_host: HyperVHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVKIT_HYPERV_PASSWORD", readme_host.password)
    url = f"{readme_host.url}?ca_file={urllib.parse.quote(readme_host.ca_file)}"
    check_output(run_readme_example(url), "hyperv")
    web1 = next(vm for vm in readme_host.state.vms.values() if vm.name == "web-1")
    assert [s.name for s in web1.snapshots.values()] == ["before-upgrade"]
