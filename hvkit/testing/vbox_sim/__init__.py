"""A stand-in ``VBoxManage``: the VirtualBox command line, emulated from real outputs, for tests.

It keeps its state in a folder (``$HVKIT_VBOX_SIM_STATE``) under a file lock, so concurrent processes
behave like concurrent VBoxManage calls; it emulates VirtualBox 6.1 or 7.0 (the state's version, or
``$HVKIT_VBOX_SIM_VERSION``), refuses options that version's option table lacks with VirtualBox's own
error text and exit status, writes real VDI/VMDK/VHD images with qemu-img, and can inject faults:
"already locked" errors, a ``WARNING:`` line before every output, lines no parser knows.

Tests put it on PATH as ``VBoxManage`` (:meth:`VBoxSim.install` writes the wrapper)::

    sim = VBoxSim(tmp_path / "vbox", version="6.1")
    sim.faults(lock={"modifyvm": 2}, warning="WARNING: The vboxdrv kernel module is not loaded.")
    env = {**os.environ, "PATH": f"{sim.bin_dir}:{os.environ['PATH']}"}
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ._cli import SimExit, parse
from ._diskcmds import DISK_COMMANDS
from ._lists import LISTS, list_vms
from ._netcmds import NET_COMMANDS
from ._state import FULL_VERSIONS, STATE_ENV, VERSION_ENV, Sim, locked, new_state
from ._vmcmds import VM_COMMANDS

__all__ = ["STATE_ENV", "VERSION_ENV", "VBoxSim", "main", "run"]

_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); import vbox_sim; raise SystemExit(vbox_sim.main())"
_ODD_LINES = 'hvkit-sim: a line that no parser knows\nfutureKey42="a value from a newer VirtualBox"\n'


class VBoxSim:
    """One stand-in host: a state folder and a ``VBoxManage`` wrapper script that points at it."""

    def __init__(self, root: str | os.PathLike[str], version: str = "7.0") -> None:
        if version not in FULL_VERSIONS:
            raise ValueError(f"the stand-in emulates VirtualBox {' or '.join(FULL_VERSIONS)}, not {version}")
        self.root = Path(root).absolute()
        self.version = version
        with locked(self.root) as state:
            if not state["vms"] and not state["media"]:
                state.clear()
                state.update(new_state(self.root, version))
            state["config"]["version"] = version
        self.bin_dir = self.root / "bin"
        self.install(self.bin_dir)

    @property
    def vboxmanage(self) -> Path:
        return self.bin_dir / "VBoxManage"

    def install(self, bin_dir: Path) -> Path:
        """Write a ``VBoxManage`` wrapper into ``bin_dir`` (a directory to put on PATH, locally or over SSH)."""
        bin_dir.mkdir(parents=True, exist_ok=True)
        script = bin_dir / "VBoxManage"
        script.write_text(
            "#!/bin/sh\n"
            f"{STATE_ENV}={shlex.quote(str(self.root))}\nexport {STATE_ENV}\n"
            # the top-level package 'vbox_sim', standard library only (-S): starting imports nothing of hvkit
            f"exec {shlex.quote(sys.executable)} -S -c {shlex.quote(_BOOT)} "
            f'{shlex.quote(str(Path(__file__).parent.parent))} "$@"\n'
        )
        script.chmod(0o755)
        return script

    def faults(self, **faults: Any) -> None:
        """Set injected faults: ``lock={subcommand or "*": count}``, ``warning=text``, ``unknown_lines=True``,
        ``acpi_ignored=True`` (guests ignore the power button). ``faults()`` clears them."""
        with locked(self.root) as state:
            state["config"]["faults"] = dict(faults)

    def state(self) -> dict[str, Any]:
        with locked(self.root) as state:
            return state

    def edit(self) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """``with sim.edit() as state:`` change the raw state (e.g. to match a golden output)."""
        return locked(self.root)


def run(argv: list[str], folder: Path, version: str | None = None) -> tuple[int, str, str]:
    """Run one command against the state in ``folder``; return (exit status, stdout, stderr)."""
    with locked(folder) as state:
        sim = Sim(state, version or os.environ.get(VERSION_ENV) or state["config"].get("version", "7.0"))
        faults = sim.faults()
        warning = f"{faults['warning']}\n" if faults.get("warning") else ""
        try:
            out = _dispatch(sim, argv)
        except SimExit as exc:
            return exc.status, warning + exc.stdout, exc.stderr
        if faults.get("unknown_lines") and out:
            first, _, rest = out.partition("\n")
            out = f"{first}\n{_ODD_LINES}{rest}"
        return 0, warning + out, ""


def _dispatch(sim: Sim, argv: list[str]) -> str:
    args = [a for a in argv if a not in ("-q", "--nologo")]
    if not args:
        raise SimExit(1, "VBoxManage: error: no command given\n")
    if args[0] in ("--version", "-v", "-V"):
        return FULL_VERSIONS[sim.version] + "\n"
    sub, rest = args[0], args[1:]
    parsed = parse(sim.version, sub, rest)
    if sub == "list":
        targets = [name for name, _, _ in parsed.options if not name.startswith("-")] + parsed.positional
        if len(targets) != 1:
            raise SimExit(2, "VBoxManage: error: Missing or too many subcommands\n")
        long, sort = parsed.has("--long"), parsed.has("--sorted")
        if targets[0] in ("vms", "runningvms"):
            return list_vms(sim, running=targets[0] == "runningvms", long=long, sort=sort)
        if targets[0] not in LISTS:
            raise SimExit(2, f"VBoxManage: error: Unknown subcommand '{targets[0]}'\n")
        return LISTS[targets[0]](sim)
    handler = VM_COMMANDS.get(sub) or DISK_COMMANDS.get(sub) or NET_COMMANDS.get(sub)
    if handler is None:
        raise SimExit(2, f"VBoxManage: error: Invalid command '{sub}'\n")
    return handler(sim, parsed)


def main(argv: list[str] | None = None) -> int:
    """The console script: ``hvkit-vboxmanage-sim`` (installed as ``VBoxManage`` by tests)."""
    folder = os.environ.get(STATE_ENV)
    if not folder:
        sys.stderr.write(f"VBoxManage (hvkit stand-in): set {STATE_ENV} to a state folder\n")
        return 1
    status, out, err = run(list(sys.argv[1:] if argv is None else argv), Path(folder))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status
