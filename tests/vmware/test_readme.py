"""The README example runs verbatim on vcsim (vCenter; only the URL changed), whose inventory gets a datastore
and a port group called 'default' as the README names them."""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvkit.testing.vcsim import Vcsim
from tests.readme_example import DocBlock, check_output, doc_blocks, run_block, run_readme_example
from tests.vmware.conftest import VCENTER, _need_go

pytest.importorskip("pyVmomi")


def _add_defaults(sim: Vcsim, directory: str) -> None:
    """A datastore and a port group named 'default' on every host (vcsim shares one datastore of a name)."""
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    ctx = ssl.create_default_context(cafile=sim.cert_file)
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password, sslContext=ctx)
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        for host in view.view:
            host.configManager.datastoreSystem.CreateLocalDatastore(name="default", path=directory)
            spec = vim.host.PortGroup.Specification(
                name="default", vlanId=0, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()
            )
            with contextlib.suppress(vim.fault.DuplicateName):  # vcsim: one network of that name per datacenter
                host.configManager.networkSystem.AddPortGroup(portgrp=spec)
        view.DestroyView()
    finally:
        Disconnect(si)


@pytest.fixture(scope="module")
def vcenter() -> Iterator[Vcsim]:
    _need_go()
    with tempfile.TemporaryDirectory(prefix="vcsim-default-") as directory, Vcsim(VCENTER) as sim:
        _add_defaults(sim, directory)
        yield sim


def test_readme_example_runs_verbatim(vcenter: Vcsim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVKIT_VCENTER_PASSWORD", vcenter.password)
    url = f"{vcenter.url}?ca_file={urllib.parse.quote(vcenter.cert_file)}"
    check_output(run_readme_example(url), "vcenter")


def test_any_hvkit_name_is_kept(vcenter: Vcsim) -> None:
    import hvkit
    from hvkit import DiskSpec, VMSpec

    with hvkit.connect(vcenter.url, password=vcenter.password, ca_file=vcenter.cert_file) as hv:
        for name in ("50% off %2f", "x" * 80, "web server #1 (ü)"):
            vm = hv.vms.create(VMSpec(name=name, memory_mib=64, disks=[DiskSpec(size_gib=0.01, pool="default")]))
            try:
                assert vm.name == name and hv.vms.get(name).id == vm.id
                assert [v.name for v in hv.vms.list() if v.id == vm.id] == [name]
                snap = hv.snapshots.create(vm, "before-upgrade: 100%")
                assert hv.snapshots.get(vm, "before-upgrade: 100%").id == snap.id
            finally:
                hv.vms.delete(vm.id)
        volume = hv.volumes.create("default", "data disk #1 (ü) 50%.vmdk", 0.01)
        assert hv.volumes.get(volume.id).name == "data disk #1 (ü) 50%.vmdk"
        hv.volumes.delete(volume)


@pytest.mark.parametrize("block", doc_blocks("vmware"), ids=lambda b: b.where)
def test_docs_vmware_examples_run(
    block: DocBlock, vcenter: Vcsim, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The docs' VMware examples, against vcsim: URLs point at it (with its CA file), secrets are its password."""
    import hvkit

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests" / "cassettes").mkdir(parents=True)
    url = f"{vcenter.url}?ca_file={urllib.parse.quote(vcenter.cert_file)}"
    namespace = {
        "hvkit": hvkit,
        "secret": vcenter.password,
        "password": vcenter.password,
        "run_checks": lambda hv: hv.vms.list(),
    }
    run_block(block, lambda _url: url, namespace, {"password": vcenter.password})
