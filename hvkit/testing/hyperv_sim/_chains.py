"""Checkpoint disks as Hyper-V keeps them: each checkpoint puts the VM's disks onto new differencing
children (``<disk>_<GUID>.avhdx``); a restore starts new children of the checkpoint's files and drops
the discarded ones; a deleted checkpoint's file is merged into its parent once nothing else needs it;
a VM's own files are its disks' ``.avhdx`` chains down to the first ``.vhdx``.
"""

from __future__ import annotations

import itertools
import shutil
import uuid

from ...driver import qemu_img
from ._output import PSError
from ._state import HostState, VirtualMachine

__all__ = ["checkpoint_disks", "merge", "move_files", "own_files", "prune", "restore_disks"]


def _is_checkpoint_file(path: str) -> bool:
    return path.lower().endswith(".avhdx")


def own_files(host: HostState, paths: list[str]) -> list[str]:
    """Each path and, through ``.avhdx`` files, its parents down to the first ``.vhdx`` (leaf first)."""
    out: list[str] = []
    for path in paths:
        current: str | None = path
        while current:
            if current.lower() not in {f.lower() for f in out}:
                out.append(current)
            if not _is_checkpoint_file(current):
                break
            try:
                current = host.vhd(current).parent
            except PSError:
                break
    return out


def _child_name(host: HostState, parent: str) -> str:
    root = parent
    while _is_checkpoint_file(root):
        above = host.vhd(root).parent
        if not above:
            break
        root = above
    folder = parent.rpartition("\\")[0]
    stem = root.rpartition("\\")[2].rsplit(".", 1)[0]
    return f"{folder}\\{stem}_{str(uuid.uuid4()).upper()}.avhdx"


def checkpoint_disks(host: HostState, vm: VirtualMachine) -> list[str]:
    """Checkpoint-VM's disk side: every drive moves onto a new child; the files frozen are returned."""
    frozen = []
    for drive in vm.drives:
        parent = drive.path
        child = _child_name(host, parent)
        host.new_vhd(child, 0, parent=parent)
        frozen.append(parent)
        drive.path = child
    return frozen


def referenced(host: HostState) -> set[str]:
    """Every file some VM's disk or checkpoint still reads (whole chains, across linked clones)."""
    return _walk(host)[0]


def _children(host: HostState) -> dict[str, set[str]]:
    """Each file's children among the files some VM or checkpoint reads (keyed by lower-cased path)."""
    return _walk(host)[1]


def _walk(host: HostState) -> tuple[set[str], dict[str, set[str]]]:
    """Walk every chain from each VM's disks and checkpoints up to its base: the files read (lower-cased) and
    each parent's children."""
    seen: set[str] = set()
    children: dict[str, set[str]] = {}
    for vm in host.vms.values():
        starts = [d.path for d in vm.drives] + [p for s in vm.snapshots.values() for p in s.config.get("disks", [])]
        for path in starts:
            current: str | None = path
            while current and current.lower() not in seen:
                seen.add(current.lower())
                try:
                    parent = host.vhd(current).parent
                except PSError:
                    break
                if parent:
                    children.setdefault(parent.lower(), set()).add(current)
                current = parent
    return seen, children


def _merge_pair(host: HostState, vm: VirtualMachine) -> bool:
    """Merge one ``.avhdx`` of the VM's current chains into its parent if that parent is kept by no checkpoint,
    attached to no drive and read by nothing else; True when a merge was done."""
    frozen = {p.lower() for v in host.vms.values() for s in v.snapshots.values() for p in s.config.get("disks", [])}
    leaves = {d.path.lower() for v in host.vms.values() for d in v.drives}
    children = _children(host)
    for drive in vm.drives:
        chain = own_files(host, [drive.path])  # leaf first
        for child, parent in itertools.pairwise(chain):
            if not _is_checkpoint_file(child):
                break
            key = parent.lower()
            if key in frozen or key in leaves or {c.lower() for c in children.get(key, set())} != {child.lower()}:
                continue
            _merge_into(host, child, parent, children.get(child.lower(), set()))
            return True
    return False


def _merge_into(host: HostState, child: str, parent: str, grandchildren: set[str]) -> None:
    """The child's blocks written into its parent; the child's own children and users re-pointed at the parent."""
    qemu_img("commit", "-q", str(host.local(child)))
    parent_format = host.vhd(parent).qemu_format
    for below in grandchildren:  # same content through the merged parent: only the backing link changes
        qemu_img("rebase", "-u", "-F", parent_format, "-b", str(host.local(parent)), str(host.local(below)))
        host.vhds.pop(below.lower(), None)
    for vm in host.vms.values():
        for drive in vm.drives:
            if drive.path.lower() == child.lower():
                drive.path = parent
        for snap in vm.snapshots.values():
            snap.config["disks"] = [parent if p.lower() == child.lower() else p for p in snap.config.get("disks", [])]
    host.remove_file(child)


def merge(host: HostState, vm: VirtualMachine) -> None:
    """Remove-VMSnapshot's merge: differencing files no checkpoint needs any more fold into their parents, so a
    VM with no checkpoints left is back on its base ``.vhdx`` (Hyper-V merges online too)."""
    while _merge_pair(host, vm):
        pass


def prune(host: HostState, candidates: list[str]) -> None:
    """Remove the checkpoint files among ``candidates`` (and their checkpoint parents) nothing reads any more."""
    keep = referenced(host)
    for path in own_files(host, candidates):
        if _is_checkpoint_file(path) and path.lower() not in keep and host.exists(path):
            host.remove_file(path)


def restore_disks(host: HostState, vm: VirtualMachine, frozen: list[str]) -> None:
    """Restore-VMSnapshot's disk side: new children of the checkpoint's files; the old state is discarded."""
    old = [d.path for d in vm.drives]
    for drive, parent in zip(vm.drives, frozen, strict=False):
        child = _child_name(host, parent)
        host.new_vhd(child, 0, parent=parent)
        drive.path = child
    prune(host, old)


def move_files(host: HostState, vm: VirtualMachine, dest: str, to: HostState | None = None) -> None:
    """Every file of the VM's chains into ``dest`` (on host ``to``, default ``host``), children re-pointed at
    their moved parents: Move-VMStorage, and Move-VM -IncludeStorage to another host."""
    target = to or host
    activity = "Move-VMStorage" if to is None else "Move-VM"
    snapshot_disks = [p for s in vm.snapshots.values() for p in s.config.get("disks", [])]
    files = own_files(host, [d.path for d in vm.drives] + snapshot_disks)
    moves = {f.lower(): f"{dest.rstrip(chr(92))}\\{f.rpartition(chr(92))[2]}" for f in files}
    for new in moves.values():
        if target.exists(new):
            raise PSError(
                f"The file '{new}' already exists.",
                "ResourceExists",
                f"ResourceExists,Microsoft.HyperV.PowerShell.Commands.{activity.replace('-', '')}",
                activity=activity,
            )
    parents = {f.lower(): host.vhd(f).parent for f in files}
    target.local(dest).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.move(host.local(f), target.local(moves[f.lower()]))
        host.vhds.pop(f.lower(), None)
    for f in files:
        parent = parents[f.lower()]
        if parent and parent.lower() in moves:
            moved_parent = moves[parent.lower()]
            info_format = target.vhd(moved_parent).qemu_format
            qemu_img(
                "rebase",
                "-u",
                "-F",
                info_format,
                "-b",
                str(target.local(moved_parent)),
                str(target.local(moves[f.lower()])),
            )
            target.vhds.pop(moves[f.lower()].lower(), None)
    for drive in vm.drives:
        drive.path = moves.get(drive.path.lower(), drive.path)
    for snap in vm.snapshots.values():
        snap.config["disks"] = [moves.get(p.lower(), p) for p in snap.config.get("disks", [])]
