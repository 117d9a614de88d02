"""The XAPI simulator against the XenAPI data model it is generated from, and its wire formats."""

from __future__ import annotations

import json
import ssl
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest

from hvkit.testing.xapi_sim import Failure, XapiSimulator, check_error, model
from hvkit.testing.xapi_sim.model import parse_type


@pytest.fixture(scope="module")
def xapi() -> Iterator[XapiSimulator]:
    """A simulator of its own: these tests send it wrong calls on purpose."""
    with XapiSimulator(hosts=2, task_delay=0.005) as sim:
        yield sim
        for description in sim.api.errors_sent:
            check_error(description)


def _post(sim: XapiSimulator, path: str, body: bytes, ctype: str) -> bytes:
    ctx = ssl.create_default_context(cafile=sim.ca_file)
    req = urllib.request.Request(f"{sim.https}{path}", data=body, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as reply:
        data: bytes = reply.read()
        return data


def _login(sim: XapiSimulator) -> str:
    return str(sim.api.call("session.login_with_password", ["root", sim.password, "2.21", "test"]))


def _fail(sim: XapiSimulator, method: str, params: list[Any]) -> list[str]:
    with pytest.raises(Failure) as info:
        sim.api.call(method, params)
    check_error(info.value.description)
    return info.value.description


def test_every_model_message_is_listed(xapi: XapiSimulator) -> None:
    listed = set(xapi.api.call("system.listMethods", []))
    for cls, spec in model()["classes"].items():
        for name in spec["messages"]:
            assert f"{cls}.{name}" in listed


def test_every_message_has_the_model_arity(xapi: XapiSimulator) -> None:
    session = _login(xapi)
    for cls, spec in model()["classes"].items():
        for name, msg in spec["messages"].items():
            if f"{cls}.{name}" == "session.login_with_password":
                continue
            wanted = len(msg["params"])
            error = _fail(xapi, f"{cls}.{name}", [session] * (wanted + 1))
            assert error == ["MESSAGE_PARAMETER_COUNT_MISMATCH", f"{cls}.{name}", str(wanted), str(wanted + 1)]


def test_records_have_exactly_the_model_fields(xapi: XapiSimulator) -> None:
    session = _login(xapi)
    for cls in ("VM", "host", "SR", "network", "PIF", "PBD", "pool", "host_metrics", "VM_metrics"):
        fields = model()["classes"][cls]["fields"]
        records = xapi.api.call(f"{cls}.get_all_records", [session])
        assert records, cls
        for rec in records.values():
            assert set(rec) == set(fields), cls
            for name, (type_text, _q, _d) in fields.items():
                kind = parse_type(type_text).form
                python = {"int": int, "float": float, "bool": bool, "set": list, "map": dict}.get(kind, str)
                assert isinstance(rec[name], python), (cls, name, rec[name])


def test_unknown_calls_fail_as_xapi_does(xapi: XapiSimulator) -> None:
    session = _login(xapi)
    assert _fail(xapi, "VM.no_such_call", [session]) == ["MESSAGE_METHOD_UNKNOWN", "VM.no_such_call"]
    assert _fail(xapi, "NoClass.get_all", [session])[0] == "MESSAGE_METHOD_UNKNOWN"
    assert _fail(xapi, "Async.VM.get_all", [session])[0] == "MESSAGE_METHOD_UNKNOWN"  # implicit: no Async
    assert _fail(xapi, "VM.get_record", [session, "OpaqueRef:nope"]) == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]
    assert _fail(xapi, "VM.get_by_uuid", [session, "nope"]) == ["UUID_INVALID", "VM", "nope"]
    assert _fail(xapi, "VM.get_all", ["OpaqueRef:stale"]) == ["SESSION_INVALID", "OpaqueRef:stale"]
    assert _fail(xapi, "session.login_with_password", ["root", "wrong"])[0] == "SESSION_AUTHENTICATION_FAILED"
    assert _fail(xapi, "VM.set_VCPUs_max", [session, "OpaqueRef:NULL", "x"]) == ["FIELD_TYPE_ERROR", "value"]


def test_power_state_errors_carry_vm_expected_actual(xapi: XapiSimulator) -> None:
    session = _login(xapi)
    vm = xapi.api.call("VM.create", [session, {"name_label": "power", "VCPUs_max": "1", "VCPUs_at_startup": "1"}])
    assert _fail(xapi, "VM.clean_shutdown", [session, vm]) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]
    xapi.api.call("VM.start", [session, vm, False, False])
    assert _fail(xapi, "VM.start", [session, vm, False, False]) == ["VM_BAD_POWER_STATE", vm, "halted", "running"]
    assert _fail(xapi, "VM.destroy", [session, vm])[0] == "VM_BAD_POWER_STATE"
    xapi.api.call("VM.hard_shutdown", [session, vm])
    xapi.api.call("VM.destroy", [session, vm])


def test_sr_full_names_requested_and_available(xapi: XapiSimulator) -> None:
    session = _login(xapi)
    sr = xapi.pool.default_sr
    error = _fail(xapi, "VDI.create", [session, {"SR": sr, "virtual_size": str(10**15), "name_label": "big"}])
    assert error[0] == "SR_FULL" and error[1] == str(10**15)


def test_xml_is_compact_and_ints_are_strings(xapi: XapiSimulator) -> None:
    body = xmlrpc.client.dumps(("root", xapi.password), "session.login_with_password").encode()
    answer: Any = xmlrpc.client.loads(_post(xapi, "/", body, "text/xml"))[0][0]
    session = answer["Value"]
    body = xmlrpc.client.dumps((session,), "host.get_all_records").encode()
    raw = _post(xapi, "/", body, "text/xml")
    assert b"\n" not in raw and b"> <" not in raw
    reply: Any = xmlrpc.client.loads(raw)[0][0]
    hosts = reply["Value"]
    assert all(isinstance(h["API_version_major"], str) for h in hosts.values())


def test_json_rpc(xapi: XapiSimulator) -> None:
    def call(method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}).encode()
        return json.loads(_post(xapi, "/jsonrpc", body, "application/json"))

    session = call("session.login_with_password", "root", xapi.password)["result"]
    hosts = call("host.get_all", session)["result"]
    assert len(hosts) == 2
    error = call("VM.get_record", session, "OpaqueRef:nope")["error"]
    assert error["message"] == "HANDLE_INVALID" and error["data"] == ["VM", "OpaqueRef:nope"]


def test_tasks_progress_and_cancel() -> None:
    with XapiSimulator(hosts=1, task_delay=0.3) as sim:
        session = _login(sim)
        vm = sim.api.call("VM.create", [session, {"name_label": "t", "VCPUs_max": "1", "VCPUs_at_startup": "1"}])
        task = sim.api.call("Async.VM.start", [session, vm, False, False])
        assert sim.api.call("task.get_status", [session, task]) == "pending"
        sim.api.call("task.cancel", [session, task])
        for _ in range(50):
            if sim.api.call("task.get_status", [session, task]) != "cancelling":
                break
            import time

            time.sleep(0.05)
        assert sim.api.call("task.get_status", [session, task]) == "cancelled"
        assert sim.api.call("task.get_error_info", [session, task]) == ["TASK_CANCELLED", task]
        assert sim.api.call("VM.get_power_state", [session, vm]) == "Halted"


def test_event_from_waits_for_changes(xapi: XapiSimulator) -> None:
    session = _login(xapi)
    first = xapi.api.call("event.from", [session, ["VM"], "", 0.1])
    assert first["events"] and all(e["class"] == "vm" for e in first["events"])
    vm = xapi.api.call("VM.create", [session, {"name_label": "ev", "VCPUs_max": "1", "VCPUs_at_startup": "1"}])
    later = xapi.api.call("event.from", [session, ["vm"], first["token"], 1.0])
    assert any(e["ref"] == vm and e["operation"] == "add" for e in later["events"])
    xapi.api.call("VM.destroy", [session, vm])


def test_model_json_is_what_the_generator_writes() -> None:
    """When the reference data model sits beside the checkout, model.json is exactly what it generates."""
    from pathlib import Path

    from hvkit.testing.xapi_sim import _generate_model

    source = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "xenapi" / "xenapi.json"
    if not source.is_file():
        pytest.skip("the XenAPI reference data model is not beside this checkout")
    assert _generate_model.compact(json.loads(source.read_text())) == model()
