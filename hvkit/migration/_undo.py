"""Undoing a migration run: what it made on the target, by identity, and the source put back."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import HvkitError, NotFound
from ..models import PowerState
from ._errors import MigrationError
from ._migration_plan import DiskPlan
from ._runner_base import RunnerBase
from ._target import files_here, is_target, target_of

__all__ = ["Undo"]


class Undo(RunnerBase):
    """Part of :class:`~._run.Runner`."""

    def _cleanup_success(self) -> None:
        data = self.journal.state("source.prepare")[1]
        if data.get("mode") == "snapshot" and not self.journal.is_done("source.cleanup"):

            def drop() -> dict[str, Any]:
                try:
                    snap = self.src.snapshots.get(self.data["vm_id"], data["snapshot_id"])
                    self.src.snapshots.delete(snap)
                except NotFound:
                    pass
                return {}

            self._step("source.cleanup", drop)
        shutil.rmtree(self.journal.staging, ignore_errors=True)

    # -- backward ------------------------------------------------------------------------------------------------
    def _clear_import(self, d: DiskPlan, data: dict[str, Any]) -> None:
        """Delete what an import step wrote on the target, known by identity: the volume id it recorded, else
        a volume that was not there when the step began and has the recorded path (or, where the vendor
        tells no path, one of the exact names the planned volume takes); then an image file the target never
        registered (a kill in the middle of making it) at a recorded path, where the pool is on this machine."""
        volume_id = data.get("volume")
        if volume_id:
            try:
                self.dst.volumes.delete(volume_id)
            except NotFound:
                pass
        target = data.get("target") or target_of(self.dst, None, d, probe=False)  # a journal of an older release
        present = set(target.get("present", ()))
        for vol in self.dst.volumes.list(target["pool"]):
            if vol.id not in present and is_target(vol, target):
                try:
                    self.dst.volumes.delete(vol)
                except NotFound:
                    pass
        if not files_here(self.dst, target["pool"]):
            return
        registered = {v.path for v in self.dst.volumes.list(target["pool"]) if v.path}
        for path in target.get("paths", ()):
            if path not in present and path not in registered and os.path.lexists(path):
                Path(path).unlink(missing_ok=True)

    def _delete_target_vm(self, vm_id: str | None) -> None:
        """Delete the VM this migration made (and its disks); a VM of the same name that is not ours stays."""
        name = self.data["name"]
        imported = {self.journal.state(f"disk{d.index}.import")[1].get("volume") for d in self.disks}
        for vm in self.dst.vms.list():
            if vm.id == vm_id or (vm.name == name and self._ours(vm)):
                # keep the imported volumes (a resume attaches them again; a rollback deletes them next);
                # disks the target copied from them at create time (import-from) go with the VM
                full = self.dst.vms.get(vm.id)  # a listed VM may come without its disks (Proxmox)
                keep = any(disk.volume in imported for disk in full.disks)
                self.dst.vms.delete(full, keep_disks=keep, force=True)
                if not keep:  # no imported volume in the VM: its disks are copies, deleted with it
                    continue
                for disk in full.disks:
                    if disk.volume and disk.volume not in imported:
                        try:
                            self.dst.volumes.delete(disk.volume)
                        except NotFound:
                            pass

    def rollback(self) -> None:
        """Undo every step begun, newest first; the source is put back as it was."""
        self.journal.status("rolling-back")
        errors: list[str] = []

        def undo(step: str, fn: Callable[[], None]) -> None:
            try:
                fn()
                self.journal.undone(step)
            except HvkitError as exc:
                errors.append(f"{step}: {exc}")

        begun = self.journal.begun()
        if "vm.start" in begun or "vm.create" in begun:
            data = self.journal.state("vm.create")[1]
            undo("vm.create", lambda: self._delete_target_vm(data.get("vm")))
            if "vm.start" in begun:
                self.journal.undone("vm.start")
        for d in reversed(self.disks):
            for phase in ("verify", "import", "checksum", "export"):
                step = f"disk{d.index}.{phase}"
                if step not in begun:
                    continue
                if phase == "import":
                    data = self.journal.state(step)[1]
                    undo(step, lambda d=d, data=data: self._clear_import(d, data))  # type: ignore[misc]
                elif phase == "export":
                    data = self.journal.state(step)[1]

                    def drop(data: dict[str, Any] = data) -> None:
                        if data.get("temporary") and data.get("path"):
                            Path(data["path"]).unlink(missing_ok=True)

                    undo(step, drop)
                else:
                    undo(step, lambda: None)
        if "source.prepare" in begun:
            undo("source.prepare", self._restore_source)
        shutil.rmtree(self.journal.staging, ignore_errors=True)
        if errors:
            self.journal.status("rollback-failed", errors=errors)
            raise MigrationError("the rollback could not undo everything: " + "; ".join(errors))
        self.journal.status("rolled-back")

    def _restore_source(self) -> None:
        _, data = self.journal.state("source.prepare")
        if data.get("snapshot_name") or data.get("snapshot_id"):
            for snap in self.src.snapshots.list(self.data["vm_id"]):
                if snap.id == data.get("snapshot_id") or snap.name == data.get("snapshot_name"):
                    self.src.snapshots.delete(snap)
        if data.get("powering_off") or data.get("mode") == "powered_off":
            vm = self._source_vm()
            if data.get("was") == PowerState.RUNNING.value and vm.power_state is PowerState.STOPPED:
                self.src.vms.start(vm)
