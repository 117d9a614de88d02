"""OVA appliances: ``VBoxManage export`` and ``VBoxManage import``, a VirtualBox-only operation offered as
backend methods (``hv.backend.export_ova`` / ``import_ova``).

Paths are on the machine that runs VBoxManage (the remote host for ``vbox+ssh://``). The option names used
(``export --output``; ``import --vsys 0 --vmname``) are the same in the 6.1 and 7.0 option tables.
"""

from __future__ import annotations

import re
import shlex

from hvkit import errors
from hvkit.driver import Rollback
from hvkit.models import VM, PowerState

from . import _storage, _vms
from ._session import Session

__all__ = ["export_ova", "import_ova"]

_SHORT_VM = re.compile(r'^"(.*)" \{([0-9a-fA-F-]{36})\}$', re.MULTILINE)


def _exists(session: Session, path: str) -> bool:
    """Whether ``path`` exists on the VirtualBox host."""
    answer = session.shell(f"if [ -e {shlex.quote(path)} ]; then echo yes; fi", timeout=session.timeout)
    return answer.strip() == b"yes"


def _check_ova_path(path: str) -> None:
    if not path or not path.lower().endswith(".ova") or "\n" in path or "\0" in path:
        raise errors.InvalidSpec(f"an OVA path must be a file name ending in .ova, not {path!r}")


def _registered(session: Session) -> dict[str, str]:
    """VM UUID -> name of every registered VM (one ``list vms``)."""
    return {uuid.lower(): name for name, uuid in _SHORT_VM.findall(session.run(["list", "vms"]))}


def export_ova(session: Session, vm: VM, path: str) -> None:
    """Write the stopped VM ``vm`` as one OVA file at ``path``; an existing file is never overwritten."""
    _check_ova_path(path)
    current = _vms.get_vm(session, vm.id)
    if current.power_state is not PowerState.STOPPED:
        raise errors.InvalidState(
            f"VM {current.name!r} is {current.power_state.value}: stop it before exporting it as an OVA"
        )
    if _exists(session, path):
        raise errors.InvalidSpec(f"{path!r} exists already on {session.host}: choose a new file name")
    with Rollback() as undo, session.serial(vm.id):
        # the file did not exist a moment ago: what a failed export leaves there is this call's
        undo.push(lambda: session.shell(f"rm -f {shlex.quote(path)}"), f"remove the partial {path}")
        session.run(["export", vm.id, "--output", path], vm=vm.id)


def import_ova(session: Session, path: str, name: str) -> VM:
    """Register the first virtual system of the OVA at ``path`` as a new VM called ``name``; return it.

    On failure the VMs and disks this call registered are removed, known by UUID (VMs that appeared with
    that name, media that appeared inside the new VM's folder)."""
    _check_ova_path(path)
    if not name or "\n" in name or "\0" in name:
        raise errors.InvalidSpec(f"{name!r} is not a VM name")
    before = _registered(session)
    if name in before.values():
        raise errors.AlreadyExists(f"a VM named {name!r} exists already on {session.host}")
    if not _exists(session, path):
        raise errors.NotFound(f"no OVA file {path!r} on {session.host}")
    media_before = {b["UUID"].lower() for b in _storage.hdd_blocks(session)}
    with Rollback() as undo, session.serial(name):
        undo.push(lambda: _remove_made(session, name, before, media_before), f"remove what importing {name} made")
        session.run(["import", path, "--vsys", "0", "--vmname", name])
        made = [uuid for uuid, vm_name in _registered(session).items() if uuid not in before and vm_name == name]
        if len(made) != 1:
            raise errors.BackendError(f"import of {path!r} did not register one VM named {name!r} (found {len(made)})")
        return _vms.get_vm(session, made[0])


def _remove_made(session: Session, name: str, before: dict[str, str], media_before: set[str]) -> None:
    folders = []
    for vm_uuid, vm_name in _registered(session).items():
        if vm_uuid in before or vm_name != name:
            continue
        config = _vms.get_vm(session, vm_uuid).extra.get("config_file", "")
        if config:
            folders.append(config.rsplit("/", 1)[0] + "/")
        session.run(["unregistervm", vm_uuid, "--delete"], vm=vm_uuid)
    folders.append(f"{session.machine_folder().rstrip('/')}/{name}/")
    for block in _storage.hdd_blocks(session):
        medium = block["UUID"].lower()
        if medium not in media_before and block.get("Location", "").startswith(tuple(folders)):
            _storage.close_medium(session, medium, delete=True)
