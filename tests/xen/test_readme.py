"""The README example runs verbatim on the XAPI simulator (only the URL changed)."""

from __future__ import annotations

import ssl
import urllib.parse
import xmlrpc.client
from collections.abc import Iterator

import pytest

from hvkit.testing.xapi_sim import XapiSimulator
from tests.readme_example import check_output, run_readme_example

XenAPI = pytest.importorskip("XenAPI")


@pytest.fixture(scope="module")
def readme_pool() -> Iterator[XapiSimulator]:
    """A pool whose shared SR and network are called 'default' (named over XAPI, as an admin would)."""
    with XapiSimulator(hosts=1, task_delay=0.005) as sim:
        context = ssl.create_default_context(cafile=sim.ca_file)
        session = XenAPI.Session(sim.https, transport=xmlrpc.client.SafeTransport(context=context))
        session.xenapi.login_with_password("root", sim.password, "1.0", "hvkit-tests")
        try:
            shared = [ref for ref, sr in session.xenapi.SR.get_all_records().items() if sr["shared"]]
            session.xenapi.SR.set_name_label(shared[0], "default")
            session.xenapi.network.set_name_label(session.xenapi.network.get_all()[0], "default")
        finally:
            session.xenapi.session.logout()
        yield sim


def test_readme_example_runs_verbatim(readme_pool: XapiSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVKIT_XEN_PASSWORD", readme_pool.password)
    url = f"{readme_pool.url}?ca_file={urllib.parse.quote(readme_pool.ca_file)}"
    check_output(run_readme_example(url), "xen")
