"""The Hyper-V host model behind the WinRM endpoint: runs hvkit's script templates by id.

A command is ``powershell -NoProfile -NonInteractive -Command -`` with stdin: a one-line bootstrap,
the template text, a ``#hvkit-params`` line and the JSON parameters. The model checks the template
at tokenizer level, validates every cmdlet call and parameter combination against the Hyper-V module's
parameter sets (``cmdlets.json``), runs the template's operation against its state and answers as
powershell.exe under WinRS does: ConvertTo-Json text on stdout, CLIXML records on stderr.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..winrm_sim import Process, WinRMEndpoint
from ._binding import SWITCHES, validate
from ._handlers import HANDLERS
from ._output import PSError, clixml, convert_to_json
from ._psparse import PSParseError, Token, check_template, invocations, tokenize
from ._samba import SambaShares
from ._state import MIGRATION_AUTH, STATE, HostState, VirtualMachine

__all__ = ["HyperVHost"]

_HEADER = re.compile(r"\A# hvkit-template: ([\w.]+) v(\d+)\r?\n")
_MARK = "\n#hvkit-params\n"
_MAX_COMMAND_LINE = 8191  # cmd.exe's limit on a command line
_RAW_GET_VM = re.compile(r"^\s*Get-VM\s*\|\s*ConvertTo-Json(?:\s+-Depth\s+(\d+))?(?:\s+-Compress)?\s*$", re.I)


class HyperVHost:
    """A Hyper-V host reachable over WinRM: ``url``, ``user``, ``password`` and ``ca_file`` for hvkit.

    >>> with HyperVHost() as host:
    ...     hv = hvkit.connect(host.url, password=host.password, ca_file=host.ca_file)
    """

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        tls: bool = True,
        name: str = "HV01",
        switches: tuple[str, ...] = (),
        smb: bool = False,
        peers: tuple[HyperVHost, ...] = (),
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hyperv-sim-") if root is None else None
        self.root = Path(self._tmp.name if self._tmp else root)  # type: ignore[arg-type]
        self.state = HostState(self.root, name)
        for switch in switches:  # more external switches, e.g. one called 'default'
            self.state.switches.append(
                {"Id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{switch}")), "Name": switch, "SwitchType": 2}
            )
        for peer in peers:  # hosts that reach each other by name for Move-VM (both ways)
            self.state.peers[peer.state.name.lower()] = peer.state
            peer.state.peers[name.lower()] = self.state
        self.user = f"hvkit-{uuid.uuid4().hex[:6]}"  # NTLM users are process-wide: one per host
        self.password = uuid.uuid4().hex
        self.endpoint = WinRMEndpoint(self.run, tls=tls, users={self.user: self.password})
        self.samba: SambaShares | None = None
        if smb:  # the drives as administrative shares, served by a real smbd (Debian's samba)
            shares = {f"{d.name}$": d for d in sorted(self.root.iterdir()) if d.is_dir() and len(d.name) == 1}
            self.samba = SambaShares(shares, self.user, self.password)
        self.commands: list[str] = []  # template ids (or "raw") in the order they ran
        self._first_use = True
        self._checked: dict[str, list[Token]] = {}

    def start(self) -> HyperVHost:
        self.endpoint.start()
        if self.samba is not None:
            try:
                self.samba.start()
            except BaseException:
                self.endpoint.stop()
                raise
        return self

    def stop(self) -> None:
        if self.samba is not None:
            self.samba.stop()
        self.endpoint.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> HyperVHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        scheme = "hyperv" if self.endpoint.tls else "hyperv+http"
        return f"{scheme}://{self.user}@127.0.0.1:{self.endpoint.port}"

    @property
    def options(self) -> str:
        """URL options this host needs beyond the defaults (the SMB port of its shares)."""
        return f"smb_port={self.samba.port}" if self.samba is not None else ""

    @property
    def ca_file(self) -> str:
        return self.endpoint.ca_file

    def populate(self, count: int, *, running_every: int = 2) -> None:
        """Add ``count`` VMs without disks (for inventory benchmarks)."""
        import datetime as dt

        with self.state.lock:
            for i in range(count):
                vm_id = str(uuid.uuid4())
                vm = VirtualMachine(
                    vm_id, f"bulk-{i:04d}", 2, 2, 1024**3, self.state.vm_path, self.state.name, dt.datetime.now(dt.UTC)
                )
                if running_every and i % running_every == 0:
                    vm.state = STATE["Running"]
                self.state.vms[vm_id] = vm

    def set_migration(self, *, auth: str = "CredSSP", enabled: bool = True) -> None:
        """As ``Set-VMHost -VirtualMachineMigrationAuthenticationType <auth>`` (and Enable-/Disable-VMMigration);
        ``Kerberos`` stands for Kerberos constrained delegation to the peers being set up in AD as well."""
        with self.state.lock:
            self.state.migration_auth = MIGRATION_AUTH[auth]
            self.state.migration_enabled = enabled

    # -- the process ----------------------------------------------------------------------------------
    def run(self, user: str, words: list[str], stdin: bytes) -> Process:
        exe = words[0].lower() if words else ""
        if len(" ".join(words)) > _MAX_COMMAND_LINE:
            return Process(stderr=b"The command line is too long.\r\n", exit_code=1)
        if exe not in ("powershell", "powershell.exe"):
            return Process(
                stderr=f"'{words[0] if words else ''}' is not recognized as an internal or external "
                "command,\r\noperable program or batch file.\r\n".encode(),
                exit_code=1,
            )
        flags = [w.lower() for w in words[1:]]
        if "-command" not in flags or flags[-1] != "-":
            return Process(
                stderr=b"host model: only 'powershell -Command -' (script on stdin) is modelled\r\n", exit_code=1
            )
        progress = ["Preparing modules for first use."] * 2 if self._first_use else []  # as powershell.exe writes it
        self._first_use = False
        text = stdin.decode("ascii") if stdin.isascii() else stdin.decode("cp437")  # the console's input code page
        bootstrap, _, rest = text.partition("\n")
        ascii_escape = "[Regex]::Replace(" in bootstrap  # the bootstrap escapes non-ASCII as \\uXXXX
        if "$ProgressPreference='SilentlyContinue'" not in bootstrap.replace(" ", ""):
            progress.append("Hyper-V")
        try:
            if "[Console]::In.ReadToEnd()" not in bootstrap:
                value, depth = self._raw(bootstrap + "\n" + rest)
            else:
                value, depth = self._template(rest)
        except PSError as error:
            return Process(stderr=clixml(progress, error), exit_code=1)
        out = convert_to_json(value, depth)
        if ascii_escape:
            data = "".join(c if ord(c) < 0x7F else _utf16_escape(c) for c in out).encode("ascii")
        else:  # Write-Output through the console's OEM code page: characters outside it become '?'
            data = (out + "\r\n").encode("cp437", errors="replace")
        return Process(stdout=data, stderr=clixml(progress, None))

    def _template(self, rest: str) -> tuple[Any, int]:
        at = rest.rfind(_MARK)
        if at < 0:
            raise PSError("The script has no parameter block.", "InvalidArgument", "hvkit.NoParameters")
        script, params_text = rest[:at], rest[at + len(_MARK) :]
        header = _HEADER.match(script)
        if header is None:
            raise PSError(
                "This host model runs hvkit script templates only (no header line found).",
                "NotImplemented",
                "hvkit.UnknownScript",
            )
        key = (header.group(1), int(header.group(2)))
        handler = HANDLERS.get(key)
        if handler is None:
            raise PSError(
                f"No template {key[0]} v{key[1]} is known to this host model.",
                "NotImplemented",
                "hvkit.UnknownTemplate",
            )
        tokens = self._check(script)
        try:
            params = json.loads(params_text.strip() or "null")
        except json.JSONDecodeError as exc:
            raise PSError(
                f"Invalid JSON primitive: {exc.msg}.",
                "NotSpecified",
                "System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand",
                activity="ConvertFrom-Json",
                exception="System.ArgumentException",
            ) from exc
        depths = re.findall(r"ConvertTo-Json -Compress -Depth (\d+)", script)
        self.commands.append(key[0])
        with self.state.lock:
            try:
                value = handler(self.state, params or {})
            except PSError as error:
                _locate(error, script, tokens)
                raise
        return value, int(depths[-1]) if depths else 2

    def _check(self, script: str) -> list[Token]:
        tokens = self._checked.get(script)
        if tokens is None:
            try:
                tokens = check_template(script)
            except PSParseError as exc:
                lines = script.splitlines()
                raise PSError(
                    str(exc).split(": ", 1)[1],
                    "ParserError",
                    "ParseException",
                    exception="ParseException",
                    line=exc.line,
                    column=exc.column,
                    source_line=lines[exc.line - 1] if exc.line <= len(lines) else "",
                ) from exc
            for inv in invocations(tokens, SWITCHES):
                validate(inv, script)
            self._checked[script] = tokens
        return tokens

    def _raw(self, script: str) -> tuple[Any, int]:
        """The one hand-written pipeline the model knows: ``Get-VM | ConvertTo-Json [-Depth N]``."""
        tokens = tokenize(script)
        for inv in invocations(tokens, SWITCHES):
            validate(inv, script)
        match = _RAW_GET_VM.match(script.strip())
        if match is None:
            raise PSError(
                "This host model runs hvkit script templates and 'Get-VM | ConvertTo-Json' only.",
                "NotImplemented",
                "hvkit.UnknownScript",
            )
        self.commands.append("raw")
        with self.state.lock:
            vms = [_full_vm(self.state, vm) for vm in self.state.vms.values()]
        return (vms[0] if len(vms) == 1 else vms), int(match.group(1) or 2)


def _utf16_escape(char: str) -> str:
    units = char.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def _locate(error: PSError, script: str, tokens: list[Token]) -> None:
    lines = script.splitlines()
    for tok in tokens:
        if tok.category == "word" and tok.text.lower() == error.activity.lower():
            error.line, error.column = tok.line, tok.column
            error.source_line = lines[tok.line - 1].strip() if tok.line <= len(lines) else ""
            return


def _full_vm(host: HostState, vm: VirtualMachine) -> dict[str, Any]:
    """Get-VM's object as ConvertTo-Json sees it (class properties, then the ETS members)."""
    drives = [
        {
            "Path": d.path,
            "ControllerType": d.controller_type,
            "ControllerNumber": d.controller_number,
            "ControllerLocation": d.location,
            "VMName": vm.name,
            "VMId": vm.id,
        }
        for d in vm.drives
    ]
    adapters = [{"Name": a.name, "MacAddress": a.mac, "SwitchName": a.switch, "VMName": vm.name} for a in vm.adapters]
    return {
        "ConfigurationLocation": vm.path,
        "SmartPagingFileInUse": False,
        "SmartPagingFilePath": vm.path,
        "SnapshotFileLocation": vm.path,
        "AutomaticStartAction": 2,
        "AutomaticStartDelay": 0,
        "AutomaticStopAction": 4,
        "AutomaticCriticalErrorAction": 1,
        "AutomaticCriticalErrorActionTimeout": 30,
        "AutomaticCheckpointsEnabled": False,
        "CPUUsage": 3 if vm.state == STATE["Running"] else 0,
        "MemoryAssigned": vm.memory if vm.state == STATE["Running"] else 0,
        "MemoryDemand": 0,
        "MemoryStatus": "",
        "NumaAligned": None,
        "NumaNodesCount": 1,
        "NumaSocketCount": 1,
        "Heartbeat": None,
        "IntegrationServicesState": "",
        "IntegrationServicesVersion": "0.0",
        "Uptime": {"Ticks": 0, "Days": 0},
        "OperationalStatus": [2],
        "PrimaryOperationalStatus": 2,
        "SecondaryOperationalStatus": None,
        "StatusDescriptions": ["Operating normally"],
        "PrimaryStatusDescription": "Operating normally",
        "SecondaryStatusDescription": None,
        "Status": "Operating normally",
        "ReplicationHealth": 0,
        "ReplicationMode": 0,
        "ReplicationState": 0,
        "ResourceMeteringEnabled": vm.metering,
        "CheckpointType": vm.checkpoint_type,
        "EnhancedSessionTransportType": 0,
        "Groups": [],
        "Version": "9.0",
        "VirtualMachineType": 0,
        "VirtualMachineSubType": vm.generation,
        "Notes": vm.notes,
        "State": vm.state,
        "ComPort1": {"Path": "", "DebuggerMode": 1, "Name": "COM 1", "VMName": vm.name},
        "ComPort2": {"Path": "", "DebuggerMode": 1, "Name": "COM 2", "VMName": vm.name},
        "DVDDrives": [{"Path": p} for p in vm.dvds],
        "FibreChannelHostBusAdapters": [],
        "FloppyDrive": None,
        "HardDrives": drives,
        "RemoteFxAdapter": None,
        "VMIntegrationService": [],
        "DynamicMemoryEnabled": False,
        "MemoryMaximum": 1099511627776,
        "MemoryMinimum": 536870912,
        "MemoryStartup": vm.memory,
        "ProcessorCount": vm.cpus,
        "BatteryPassthroughEnabled": False,
        "Generation": vm.generation,
        "IsClustered": False,
        "ParentSnapshotId": vm.current,
        "ParentSnapshotName": None,
        "Path": vm.path,
        "SizeOfSystemFiles": 49152,
        "GuestControlledCacheTypes": False,
        "LowMemoryMappedIoSpace": 134217728,
        "HighMemoryMappedIoSpace": 536870912,
        "LockOnDisconnect": 1,
        "CreationTime": vm.created,
        "Id": vm.id,
        "Name": vm.name,
        "NetworkAdapters": adapters,
        "CimSession": {"ComputerName": None, "InstanceId": str(uuid.uuid5(uuid.NAMESPACE_URL, host.name))},
        "ComputerName": host.name,
        "IsDeleted": False,
        "ParentCheckpointId": vm.current,
        "ParentCheckpointName": None,
        "VMName": vm.name,
        "VMId": vm.id,
        "CheckpointFileLocation": vm.path,
    }
