"""Record a session with a Hyper-V host (WinRM over HTTPS) to a cassette, and replay it without the host.

Uses vcrpy (``hvkit[test]``). Record once against a real host (or the host model)::

    from hvkit.backends.hyperv.recording import cassette

    with cassette("tests/hyperv/cassettes/inventory.yaml", mode="record", secrets=[password, user]):
        with hvkit.connect("hyperv://admin@hv01.example.com", password=password, ca_file="hv01.pem") as hv:
            names = [vm.name for vm in hv.vms.list()]

then replay it (``mode="replay"``, the default) where no host exists: the same code, any password.
Only HTTPS sessions replay: over ``hyperv+http://`` every message is sealed with keys derived from the
password and a fresh NTLM exchange.

Requests are matched in order on method, path and what the WS-Management envelope asks: its action,
resource, shell and command ids and, for the stdin a script travels in, the template's id and version
(its JSON parameters hold values made afresh each run, such as new MACs). pywinrm's message ids are
made deterministic while a cassette is in use, so the recorded ``RelatesTo`` answers match.

Cassettes are scrubbed before they are written: ``Authorization`` headers (the NTLM exchange, which
carries the user name and a password-derived response) are dropped, and the ``secrets`` you list
(passwords, user names, host names) become ``***`` in every body.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import Any

from ...driver import RecordMode as Mode
from ...driver import cassette_recorder, scrub_secrets

__all__ = ["cassette", "envelope_key", "scrub_text"]

_NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
_HEADER = re.compile(rb"# hvkit-template: ([\w.]+ v\d+)")


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every listed secret (at least 3 characters) with ``***``."""
    return scrub_secrets(text, secrets)


def envelope_key(body: bytes | str | None) -> tuple[Any, ...]:
    """What a request asks, without what changes between runs (message ids, addresses, fresh parameters)."""
    if not body:
        return ()
    raw = body.encode() if isinstance(body, str) else body
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return ("unparsed", raw)
    selectors = tuple(s.text for s in root.findall("s:Header/w:SelectorSet/w:Selector", _NS))
    commands = tuple(sorted({n.get("CommandId", "") for n in root.iter() if n.get("CommandId")}))
    templates = []
    for stream in root.findall("s:Body/rsp:Send/rsp:Stream", _NS):
        found = _HEADER.search(base64.b64decode(stream.text or ""))
        templates.append(found.group(1).decode() if found else "stdin")
    words = tuple(n.text for n in root.findall("s:Body/rsp:CommandLine/*", _NS))
    return (
        root.findtext("s:Header/a:Action", namespaces=_NS),
        root.findtext("s:Header/w:ResourceURI", namespaces=_NS),
        selectors,
        commands,
        tuple(templates),
        words,
    )


@contextlib.contextmanager
def _deterministic_message_ids() -> Iterator[None]:
    """pywinrm's message ids from a counter (the same in recording and replay), not uuid4."""
    from winrm import protocol

    counter = itertools.count(1)

    class _Ids:
        UUID = uuid.UUID

        @staticmethod
        def uuid4() -> uuid.UUID:
            return uuid.uuid5(uuid.NAMESPACE_URL, f"hvkit-recording/{next(counter)}")

    original = vars(protocol)["uuid"]
    setattr(protocol, "uuid", _Ids)  # noqa: B010 - a module attribute pywinrm does not export
    try:
        yield
    finally:
        setattr(protocol, "uuid", original)  # noqa: B010


@contextlib.contextmanager
def cassette(path: str, *, mode: Mode = "replay", secrets: Iterable[str] = ()) -> Iterator[Any]:
    """Record (``"record"``), replay (``"replay"``) or record once then replay (``"auto"``) WinRM traffic."""
    hidden = [s for s in secrets if s]

    def same_envelope(r1: Any, r2: Any) -> None:
        assert envelope_key(r1.body) == envelope_key(r2.body), "the WS-Management requests differ"

    recorder = cassette_recorder(
        mode,
        lambda text: scrub_secrets(text, hidden),
        match_on=["method", "path", "wsman"],
        matchers={"wsman": same_envelope},
    )
    with _deterministic_message_ids(), recorder.use_cassette(path) as tape:
        yield tape
