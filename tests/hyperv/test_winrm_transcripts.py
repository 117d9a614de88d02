"""The WinRM endpoint answers as the recorded Windows host did: same headers, selectors, namespaces, faults.

Each transcript's requests are replayed against the endpoint's shell service (shell and command ids
swapped for the ones it hands out) and every response is compared with the recorded one by structure:
the element tree (namespace URIs and attribute names), the namespace prefixes the envelope declares,
the action, and for faults the code, subcode and WSManFault code.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hvkit.testing.winrm_sim import Process, ShellService

yaml = pytest.importorskip("yaml")

DATA = Path(__file__).parent / "data" / "transcripts"
TRANSCRIPTS = sorted(DATA.glob("test_winrs_*.yml"))
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
# messages this endpoint does not model (a server without cmd.exe's search path; a second Create on a reused id)
SKIP = {("test_winrs_no_cmd_shell.yml", 1)}


def shape(xml: str | bytes, skip_fault_message: bool = True) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    root = ET.fromstring(xml)
    out: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    def walk(node: ET.Element, path: tuple[str, ...]) -> None:
        here = (*path, node.tag)
        out.add((here, tuple(sorted(node.attrib))))
        if skip_fault_message and node.tag == f"{{{NS['f']}}}Message":
            return  # its content is the host's wording (a ProviderFault on some versions)
        for child in node:
            walk(child, here)

    walk(root, ())
    # p:ActivityId (an ETW trace id) appears on some responses of a host that traces: optional
    return {entry for entry in out if not entry[0][-1].endswith("}ActivityId")}


def prefixes(xml: str | bytes) -> set[str]:
    text = xml.decode() if isinstance(xml, bytes) else xml
    head = text[: text.index(">")]
    return set(re.findall(r'xmlns:(\w+)="', head))


def fault_codes(xml: str | bytes) -> tuple[Any, ...]:
    root = ET.fromstring(xml)
    wsman = root.find(".//f:WSManFault", NS)
    return (
        root.findtext("s:Body/s:Fault/s:Code/s:Value", namespaces=NS),
        root.findtext("s:Body/s:Fault/s:Code/s:Subcode/s:Value", namespaces=NS),
        None if wsman is None else wsman.get("Code"),
    )


def _slow_runner(user: str, words: list[str], stdin: bytes) -> Process:
    time.sleep(4.0)
    return Process(stdout=b"done\r\n")


def _runner(user: str, words: list[str], stdin: bytes) -> Process:
    return Process(stdout=b"output\r\n", stderr=b"error\r\n" if "stderr" in " ".join(words) else b"", exit_code=0)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_endpoint_answers_like_the_recorded_host(path: Path) -> None:
    messages = yaml.safe_load(path.read_text())["messages"]
    timeout_case = "operation_timeout" in path.name
    service = ShellService(_slow_runner if timeout_case else _runner)
    ids: dict[str, str] = {}
    compared = 0
    for index, message in enumerate(messages):
        if (path.name, index) in SKIP:
            continue
        recorded: str = message["response"]
        request: str = message["request"]
        for theirs, ours in ids.items():
            request = request.replace(theirs, ours)
        if timeout_case:
            request = re.sub(r"<wsman:OperationTimeout>PT\d+S<", "<wsman:OperationTimeout>PT1S<", request)
        status, answer = service.handle(request.encode(), "vagrant", "https://127.0.0.1:5986/wsman")
        is_fault = "<s:Fault>" in recorded
        if timeout_case and not is_fault and "/Receive<" in request:
            continue  # the recorded host had output ready here; this runner is still sleeping
        assert (status == 500) is is_fault, (index, answer[:400])
        # learn the ids the recorded host handed out, to use ours in later requests
        for tag in ("rsp:ShellId", "rsp:CommandId"):
            mine = re.search(rf"<{tag}>([^<]+)<", answer.decode())
            recorded_id = re.search(rf"<{tag}>([^<]+)<", recorded)
            if mine and recorded_id:
                ids[recorded_id.group(1)] = mine.group(1)
        if "/Send<" in request or "/Receive<" in request:
            time.sleep(0.05)
        assert prefixes(answer) == prefixes(recorded), index
        assert ET.fromstring(answer).findtext("s:Header/a:Action", namespaces=NS) == ET.fromstring(recorded).findtext(
            "s:Header/a:Action", namespaces=NS
        )
        if is_fault:
            assert fault_codes(answer) == fault_codes(recorded), index
        assert shape(answer) == shape(recorded), (index, shape(answer) ^ shape(recorded))
        compared += 1
    assert compared >= 2


def test_requests_pywinrm_sends_match_the_recorded_client() -> None:
    """pywinrm's envelopes carry the headers and selectors the recorded client sent (per action)."""
    import winrm

    from hvkit.testing.winrm_sim import WinRMEndpoint

    seen: list[bytes] = []
    with WinRMEndpoint(_runner) as ep:
        original = ep.shells.handle

        def spy(body: bytes, user: str, address: str) -> tuple[int, bytes]:
            seen.append(body)
            return original(body, user, address)

        ep.shells.handle = spy  # type: ignore[method-assign]
        p = winrm.protocol.Protocol(
            ep.endpoint, transport="ntlm", username="hvkit", password=ep.users["hvkit"], ca_trust_path=ep.ca_file
        )
        shell = p.open_shell()
        command = p.run_command(shell, "powershell", ["-Command", "-"])
        p.send_command_input(shell, command, b"x", end=True)
        p.get_command_output(shell, command)
        p.cleanup_command(shell, command)
        p.close_shell(shell)
    recorded = yaml.safe_load((DATA / "test_winrs_send.yml").read_text())["messages"]
    by_action = {
        ET.fromstring(m["request"]).findtext("s:Header/a:Action", namespaces=NS): m["request"] for m in recorded
    }
    for body in seen:
        action = ET.fromstring(body).findtext("s:Header/a:Action", namespaces=NS)
        theirs = ET.fromstring(by_action[action]).find("s:Header", NS)
        mine = ET.fromstring(body).find("s:Header", NS)
        assert theirs is not None and mine is not None
        # SessionId and the keep-alive OptionSet on Receive are the recorded client's (pypsrp's) own additions
        optional = {f"{{{NS['w'].replace('dmtf.org/wbem', 'microsoft.com/wbem')}}}SessionId", f"{{{NS['w']}}}OptionSet"}
        needed = {c.tag for c in theirs} - optional
        assert needed <= {c.tag for c in mine}, action
        selectors = [s.get("Name") for s in mine.findall("w:SelectorSet/w:Selector", NS)]
        assert selectors == [s.get("Name") for s in theirs.findall("w:SelectorSet/w:Selector", NS)], action
