"""Fixtures: a Hyper-V host model behind a real WinRM endpoint (HTTPS, NTLM, pywinrm as the client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor

pytest.importorskip("winrm")
pytest.importorskip("spnego")

from hvkit.testing.hyperv_sim import HyperVHost
from hvkit.testing.hyperv_sim._samba import samba_available


@pytest.fixture(scope="module")
def host() -> Iterator[HyperVHost]:
    with HyperVHost(smb=samba_available()) as h:
        yield h


@pytest.fixture
def hv(host: HyperVHost) -> Iterator[Hypervisor]:
    url = f"{host.url}?pools=fast=D:/VMs&{host.options}"
    conn = hvkit.connect(url, password=host.password, ca_file=host.ca_file, timeout=20)
    try:
        yield conn
    finally:
        for vm in conn.vms.list():  # clean up whatever a test left, even when it failed
            try:
                conn.vms.delete(vm.id, force=True)
            except hvkit.errors.HvkitError:
                pass
        conn.close()
