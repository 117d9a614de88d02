"""Fixtures: one XAPI simulator per session (HTTPS on loopback, verification on through its certificate)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit import errors
from hvkit.hypervisor import Hypervisor
from hvkit.testing.xapi_sim import XapiSimulator, check_error

pytest.importorskip("XenAPI")

PROTOCOL_ERRORS = {"MESSAGE_METHOD_UNKNOWN", "MESSAGE_PARAMETER_COUNT_MISMATCH", "FIELD_TYPE_ERROR"}


@pytest.fixture(scope="session")
def xapi() -> Iterator[XapiSimulator]:
    with XapiSimulator(hosts=2, task_delay=0.005) as sim:
        yield sim
        for description in sim.api.errors_sent:  # every error it sent is one the model knows, with its arity
            check_error(description)
        # hvkit's own traffic: every call it made is in the model, with the model's parameters
        wrong = [d for d in sim.api.errors_sent if d[0] in PROTOCOL_ERRORS]
        assert not wrong, f"hvkit made calls the model does not have: {wrong}"


@pytest.fixture
def hv(xapi: XapiSimulator) -> Iterator[Hypervisor]:
    conn = hvkit.connect(xapi.url, password=xapi.password, ca_file=xapi.ca_file, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def made(hv: Hypervisor) -> Iterator[list[str]]:
    """Names of VMs a test made: deleted (forced) after it."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            hv.vms.delete(name, force=True)
        except errors.NotFound:
            pass
