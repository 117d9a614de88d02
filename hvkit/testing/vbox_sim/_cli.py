"""Argument parsing and error output of the stand-in, as VBoxManage does them.

Options are checked against the emulated version's option table (``options.json``, generated from
VirtualBox's own ``RTGETOPTDEF`` tables): an option the version does not know prints the usage and
``VBoxManage: error: Unknown option: <opt>`` and exits with 2 (RTEXITCODE_SYNTAX), as IPRT's getopt
makes VBoxManage do. Errors from the API print VBoxManage's three ``error:`` lines and exit with 1.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

__all__ = ["Args", "SimExit", "api_error", "lock_error", "not_found", "parse", "syntax_error"]

PROG = "VBoxManage"
_INDEX = re.compile(r"^(-{1,2}[a-z][a-z0-9-]*?[a-z-])(\d+)$")
_SHORT = {"list": {"-l": "--long", "-s": "--sorted"}}


class SimExit(Exception):
    """End the command with this exit status, stdout and stderr."""

    def __init__(self, status: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(stderr)
        self.status = status
        self.stderr = stderr
        self.stdout = stdout


@functools.cache
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(__file__).with_name("options.json").read_text())
    return data


def syntax_error(version: str, sub: str, message: str) -> SimExit:
    usage = table()[version].get(sub, {}).get("usage", [])
    text = "Usage:\n\n" + "".join(f"{line}\n" for line in usage) + "\n" if usage else ""
    return SimExit(2, f"{text}{PROG}: error: {message}\n")


def api_error(message: str, code: str, hexcode: str, component: str, interface: str, context: str) -> SimExit:
    return SimExit(
        1,
        f"{PROG}: error: {message}\n"
        f"{PROG}: error: Details: code {code} ({hexcode}), component {component}, interface {interface}, "
        "callee nsISupports\n"
        f'{PROG}: error: Context: "{context}" at line 100 of file VBoxManageMisc.cpp\n',
    )


def not_found(name: str) -> SimExit:
    return api_error(f"Could not find a registered machine named '{name}'", "VBOX_E_OBJECT_NOT_FOUND",
                     "0x80bb0001", "VirtualBoxWrap", "IVirtualBox",
                     "FindMachine(Bstr(pszVM).raw(), machine.asOutParam())")  # fmt: skip


def lock_error(name: str, launching: bool) -> SimExit:
    if launching:
        message = f"The machine '{name}' is already locked by a session (or being locked or unlocked)"
        context = (
            "LaunchVMProcess(a->session, sessionType.raw(), ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())"
        )
    else:
        message = f"The machine '{name}' is already locked for a session (or being unlocked)"
        context = "LockMachine(a->session, LockType_Write)"
    return api_error(message, "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MachineWrap", "IMachine", context)


class Args:
    """Parsed arguments: options in order (name, value or None, index for ``--nic<N>``) and positionals."""

    def __init__(self) -> None:
        self.options: list[tuple[str, str | None, int | None]] = []
        self.positional: list[str] = []

    def get(self, *names: str, default: str | None = None) -> str | None:
        found = default
        for name, value, _ in self.options:
            if name in names:
                found = value
        return found

    def has(self, *names: str) -> bool:
        return any(name in names for name, _, _ in self.options)

    def indexed(self, *names: str) -> dict[int, str]:
        return {index: value or "" for name, value, index in self.options if name in names and index is not None}


def parse(version: str, sub: str, argv: list[str]) -> Args:
    """Split ``argv`` (after the subcommand) by the version's option table of ``sub``."""
    spec = table()[version].get(sub)
    args = Args()
    if spec is None:  # a subcommand without a getopt table (guestproperty, metrics): positionals and --opts
        i = 0
        while i < len(argv):
            token = argv[i]
            if token.startswith("--"):
                name, eq, value = token.partition("=")
                if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    value, i = argv[i + 1], i + 1
                args.options.append((name, value if (eq or value) else None, None))
            else:
                args.positional.append(token)
            i += 1
        return args
    options: dict[str, str] = spec["options"]
    indexed = set(spec.get("indexed", []))
    shorts = _SHORT.get(sub, {})
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token in shorts:
            args.options.append((shorts[token], None, None))
            continue
        if token in options and not token.startswith("-"):  # list's targets are getopt entries too
            args.options.append((token, None, None))
            continue
        if not token.startswith("-") or token == "-":
            args.positional.append(token)
            continue
        name, eq, value = token.partition("=")
        index = None
        if name not in options:
            match = _INDEX.match(name)
            if match and match.group(1) in indexed:
                name, index = match.group(1), int(match.group(2))
            else:
                raise syntax_error(version, sub, f"Unknown option: {token}")
        if options.get(name) == "v":
            if not eq:
                if i >= len(argv):
                    raise syntax_error(version, sub, f"The option {name} needs a value")
                value = argv[i]
                i += 1
            args.options.append((name, value, index))
        else:
            args.options.append((name, None, index))
    return args
