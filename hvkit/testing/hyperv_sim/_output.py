"""What Windows PowerShell 5.1 prints: ConvertTo-Json's shape and CLIXML error/progress records on stderr."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

import attrs

__all__ = ["PSError", "clixml", "convert_to_json", "progress_record"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# JavaScriptSerializer (5.1's ConvertTo-Json) escapes these besides quotes, backslashes and control characters
_EXTRA_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "'": "\\u0027", "&": "\\u0026"}
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ch in _EXTRA_ESCAPES:
            out.append(_EXTRA_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _to_string(value: Any) -> str:
    """.NET ToString() of a value ConvertTo-Json no longer descends into."""
    if isinstance(value, Mapping):
        return "@{" + "; ".join(f"{k}={_to_string(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return " ".join(_to_string(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dt.datetime):
        return value.strftime("%m/%d/%Y %H:%M:%S").lstrip("0")
    return str(value)


def convert_to_json(value: Any, depth: int = 2) -> str:
    """``value | ConvertTo-Json -Compress -Depth depth`` as Windows PowerShell 5.1 writes it.

    Enums are numbers, DateTimes ``\\/Date(ms)\\/``, and containers below ``depth`` become their
    ToString() (5.1 truncates silently).
    """

    def emit(v: Any, level: int) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, enum.Enum):
            return str(int(v.value))
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                return _string(str(v))
            return repr(v) if v != int(v) else str(int(v))
        if isinstance(v, str):
            return _string(v)
        if isinstance(v, dt.datetime):
            stamp = v if v.tzinfo else v.replace(tzinfo=dt.UTC)
            return '"\\/Date(' + str(int((stamp - _EPOCH).total_seconds() * 1000)) + ')\\/"'
        if isinstance(v, Mapping | list | tuple) and level >= depth and level > 0:
            return _string(_to_string(v))
        if isinstance(v, Mapping):
            return "{" + ",".join(f"{_string(str(k))}:{emit(x, level + 1)}" for k, x in v.items()) + "}"
        if isinstance(v, list | tuple):
            return "[" + ",".join(emit(x, level + 1) for x in v) + "]"
        return _string(_to_string(v))

    return emit(value, 0)


@attrs.define
class PSError(Exception):
    """A terminating error record: what the host model raises and renders as PowerShell would."""

    message: str
    category: str  # ErrorCategory name: ObjectNotFound, InvalidOperation, InvalidArgument, ...
    error_id: str  # the FullyQualifiedErrorId (with its ",Class" suffix where a cmdlet raised it)
    activity: str = ""  # the cmdlet name shown in [..]
    exception: str = "Microsoft.HyperV.PowerShell.VirtualizationException"
    target: str = ""
    target_type: str = ""
    line: int = 1
    column: int = 1
    source_line: str = ""

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        """The error as the console host formats it (what powershell.exe writes to a redirected stderr)."""
        exc_short = self.exception.rsplit(".", 1)[-1]
        prefix = f"{self.activity} : " if self.activity and self.activity != "Write-Error" else ""
        target = f"{self.target}:{self.target_type}" if self.target else ":"
        out = [f"{prefix}{self.message}", f"At line:{self.line} char:{self.column}"]
        if self.source_line:
            out += [f"+ {self.source_line}", "+ " + " " * max(self.column - 1, 0) + "~" * max(len(self.activity), 1)]
        out += [
            f"    + CategoryInfo          : {self.category}: ({target}) [{self.activity}], {exc_short}",
            f"    + FullyQualifiedErrorId : {self.error_id}",
            " ",
        ]
        return out


def progress_record(ref: int, activity: str) -> str:
    type_names = (
        '<TN RefId="0"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN>'
        if ref == 0
        else '<TNRef RefId="0" />'
    )
    return (
        f'<Obj S="progress" RefId="{ref}">{type_names}<MS><I64 N="SourceId">1</I64><PR N="Record">'
        f"<AV>{escape(activity)}</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR>"
        f"<SD> </SD></PR></MS></Obj>"
    )


def _xml_text(text: str) -> str:
    out = []
    for ch in escape(text):
        out.append(f"_x{ord(ch):04X}_" if ord(ch) < 0x20 and ch != "\t" else ch)
    return "".join(out)


def clixml(progress: list[str], error: PSError | None) -> bytes:
    """stderr of powershell.exe under WinRS: ``#< CLIXML`` then progress objects and error lines."""
    if not progress and error is None:
        return b""
    parts = ['#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">']
    parts += [progress_record(i, activity) for i, activity in enumerate(progress)]
    if error is not None:
        parts += [f'<S S="Error">{_xml_text(line + chr(13) + chr(10))}</S>' for line in error.lines()]
    parts.append("</Objs>")
    return "".join(parts).encode("utf-8")


def loads(text: str) -> Any:
    """json.loads for tests (5.1's escapes are plain JSON)."""
    return json.loads(text)
