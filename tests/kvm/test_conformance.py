"""The public conformance suite, bound to the kvm backend: libvirt's test driver and qemu:///system."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.conformance import AllTests

from .conftest import _qemu_available, sweep


class KvmTestDriverFixtures:
    pool: str | None = "default-pool"
    network: str | None = "default"

    @pytest.fixture
    def hv(self, prefix: str) -> Iterator[Hypervisor]:
        with hvkit.connect("libvirt://test/default") as hv:
            try:
                yield hv
            finally:
                sweep(hv, prefix)  # this test's objects only: another run may share the daemon


class KvmQemuFixtures:
    pool: str | None = "default"
    network: str | None = "default"
    # the blank test disks boot no OS that could answer the ACPI power button; graceful reboot and stop
    # of a real guest are tested on the booted guest of test_qemu.py
    graceful_stop = False

    @pytest.fixture
    def hv(self, prefix: str) -> Iterator[Hypervisor]:
        reason = _qemu_available()
        if reason:
            pytest.skip(reason)
        with hvkit.connect("kvm:///system", virt_type="qemu") as hv:
            try:
                yield hv
            finally:
                sweep(hv, prefix)  # this test's objects only: another run may share the daemon


class TestKvmTestDriver(KvmTestDriverFixtures, AllTests):
    pass


@pytest.mark.slow
class TestKvmQemu(KvmQemuFixtures, AllTests):
    pass
