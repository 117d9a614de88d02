"""XAPI's wire formats: compact XML-RPC (ints as strings, no whitespace between elements) and JSON-RPC."""

from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

from .model import XDate

__all__ = ["json_response", "parse_json", "parse_xml", "xml_response", "xml_value"]


def _escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _encode(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(f"<value>{_escape(value)}</value>")
    elif kind is dict:
        out.append("<value><struct>")
        for key, item in value.items():
            out.append(f"<member><name>{_escape(str(key))}</name>")
            _encode(item, out)
            out.append("</member>")
        out.append("</struct></value>")
    elif kind is list or kind is tuple:
        out.append("<value><array><data>")
        for item in value:
            _encode(item, out)
        out.append("</data></array></value>")
    elif kind is bool:
        out.append("<value><boolean>1</boolean></value>" if value else "<value><boolean>0</boolean></value>")
    elif kind is int:
        out.append(f"<value>{value}</value>")  # XAPI sends 64-bit ints as strings
    elif kind is float:
        out.append(f"<value><double>{value!r}</double></value>")
    elif kind is XDate:
        out.append(f"<value><dateTime.iso8601>{value}</dateTime.iso8601></value>")
    elif value is None:
        out.append("<value></value>")
    else:
        out.append(f"<value>{_escape(str(value))}</value>")


def xml_value(value: Any) -> str:
    """The content of one ``<value>`` (as task.result holds it)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)[7:-8]


def xml_response(value: Any = None, error: list[str] | None = None) -> bytes:
    out = ["<?xml version='1.0'?><methodResponse><params><param><value><struct>"]
    if error is None:
        out.append("<member><name>Status</name><value>Success</value></member><member><name>Value</name>")
        _encode(value, out)
        out.append("</member>")
    else:
        out.append("<member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>")
        _encode(error, out)
        out.append("</member>")
    out.append("</struct></value></param></params></methodResponse>")
    return "".join(out).encode()


def parse_xml(body: bytes) -> tuple[str, list[Any]]:
    params, method = xmlrpc.client.loads(body, use_builtin_types=False)
    return str(method), list(params)


def parse_json(body: bytes) -> tuple[str, list[Any], Any, str]:
    data = json.loads(body)
    return str(data["method"]), list(data.get("params", [])), data.get("id"), str(data.get("jsonrpc", "1.0"))


def json_response(request_id: Any, version: str, value: Any = None, error: list[str] | None = None) -> bytes:
    if version == "2.0":
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if error is None:
            body["result"] = value
        else:
            body["error"] = {"code": 1, "message": error[0], "data": error[1:]}
    else:
        body = (
            {"id": request_id, "result": value, "error": None}
            if error is None
            else {
                "id": request_id,
                "result": None,
                "error": error,
            }
        )
    return json.dumps(body, separators=(",", ":")).encode()
