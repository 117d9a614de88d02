"""Record a session with a vSphere server to a cassette, and replay it later without the server.

Uses vcrpy (``pip install vcrpy``, part of ``hvkit[test]``). Record against a real vCenter once::

    from hvkit.backends.vmware.recording import cassette

    with cassette("tests/cassettes/inventory.yaml", mode="record", secrets=[password]):
        with hvkit.connect("vcenter://admin@vc.example.com/DC1", password=password) as hv:
            names = [vm.name for vm in hv.vms.list()]

then replay it in CI (``mode="replay"``, the default), where no server is needed: run the same code
(any password; the same URL). Requests are matched on method, path and scrubbed body, in order.

Cassettes are scrubbed before they are written: the Login user name and password, the session
cookie (``Cookie`` / ``Set-Cookie``), the session key in the Login answer, every ticket
(clone, WebMKS, service and NFC lease tickets) and any ``secrets`` you list become ``***``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ...driver import RecordMode as Mode
from ...driver import cassette_recorder, scrub_body, scrub_secrets

__all__ = ["cassette", "scrub_text"]

_SECRET_ELEMENTS = ("userName", "password", "ticket", "sslThumbprint", "sessionId", "token", "key")
_TICKET_RESPONSES = re.compile(
    r"(<(Acquire(?:Clone|Generic(?:Service)?|Mks|Credentials(?:InGuest)?)?Ticket(?:Response)?)[^>]*>.*?<returnval[^>]*>)(.*?)(</returnval>)",
    re.DOTALL,
)
_LOGIN_KEY = re.compile(
    r"(<(?:Login|LoginByToken|LoginExtensionByCertificate|CloneSession)Response[^>]*>.*?<key>)(.*?)(</key>)", re.DOTALL
)
_ELEMENTS = re.compile(r"<(" + "|".join(_SECRET_ELEMENTS[:-1]) + r")(\s[^>]*)?>(.*?)</\1>", re.DOTALL)
_COOKIE = re.compile(r'vmware_soap_session="?[^";\s]+"?')


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide credentials, session keys, tickets and the given secrets in a SOAP message."""
    text = _ELEMENTS.sub(lambda m: f"<{m.group(1)}{m.group(2) or ''}>***</{m.group(1)}>", text)
    text = _TICKET_RESPONSES.sub(lambda m: f"{m.group(1)}***{m.group(4)}", text)
    text = _LOGIN_KEY.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    text = _COOKIE.sub('vmware_soap_session="***"', text)
    return scrub_secrets(text, secrets)


@contextlib.contextmanager
def cassette(path: str, *, mode: Mode = "replay", secrets: Iterable[str] = ()) -> Iterator[Any]:
    """Record (``"record"``), replay (``"replay"``) or record once then replay (``"auto"``) HTTP traffic."""
    hidden = [s for s in secrets if s]

    def scrub(text: str) -> str:
        return scrub_text(text, hidden)

    def same_body(r1: Any, r2: Any) -> None:
        b1 = scrub_body(r1.body or b"", scrub)
        b2 = scrub_body(r2.body or b"", scrub)
        assert b1 == b2, "request bodies differ"

    def patches() -> tuple[tuple[Any, str, Any], ...]:
        from pyVim import connect as pyvim_connect
        from pyVmomi import SoapAdapter
        from vcr.stubs import VCRHTTPConnection, VCRHTTPSConnection

        # pyvmomi binds http.client's classes at import time: patch its names too.
        return (
            (pyvim_connect, "HTTPSConnection", VCRHTTPSConnection),
            (SoapAdapter, "HTTPSConnection", VCRHTTPSConnection),
            (SoapAdapter, "HTTPConnection", VCRHTTPConnection),
        )

    recorder = cassette_recorder(
        mode,
        scrub,
        match_on=["method", "path", "query", "soap_body"],
        matchers={"soap_body": same_body},
        patches=patches,
    )
    with recorder.use_cassette(path) as tape:
        yield tape
