"""hv.snapshots: the snapshot tree of a VM."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from ._managers import Manager
from ._resolve import find
from ._vms import VMRef
from .capabilities import Capability
from .errors import AlreadyExists, HvkitError, InvalidSpec, InvalidState
from .models import VM, PowerState, Snapshot
from .models.spec import check_name
from .tasks import ProgressCallback, Task

__all__ = ["SnapshotManager"]


class SnapshotManager(Manager):
    def list(self, vm: VMRef) -> list[Snapshot]:
        """Every snapshot of a VM; ``parent`` links make the tree."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.list")
        return self._hv.call("snapshots.list", self._b.list_snapshots, self._hv.vms.get(vm))

    def list_many(self, vms: Iterable[VM]) -> dict[str, builtins.list[Snapshot]]:
        """Snapshots of many VMs, keyed by VM id, in as few round trips as the vendor allows."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.list_many")
        chosen = builtins.list(vms)
        if not all(isinstance(v, VM) for v in chosen):
            raise InvalidSpec("snapshots.list_many takes VM values (from vms.list)")
        result: dict[str, builtins.list[Snapshot]] = self._hv.call(
            "snapshots.list_many", self._b.list_snapshots_many, chosen
        )
        return result

    def get(self, vm: VMRef, ref: str) -> Snapshot:
        found: Snapshot = find(self.list(vm), ref, "snapshot")
        return found

    def create(
        self,
        vm: VMRef,
        name: str,
        *,
        description: str = "",
        memory: bool | None = None,
        quiesce: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """Snapshot a VM. ``memory=None`` (the default): keep its memory too when it is running and the backend
        can (so a revert returns it running, on every backend); ``True`` / ``False`` ask for exactly that."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.create")
        if memory:
            self._hv.require(Capability.SNAPSHOT_MEMORY, "snapshots.create(memory=True)")
        check_name("snapshot name", name)
        cur = self._hv.vms.get(vm)
        if memory is None:
            memory = cur.power_state is PowerState.RUNNING and Capability.SNAPSHOT_MEMORY in self._hv.capabilities
        if memory and cur.power_state is not PowerState.RUNNING:
            raise InvalidState(f"a memory snapshot needs a running VM; {cur.name!r} is {cur.power_state.value}")
        existing = self._hv.call("snapshots.list", self._b.list_snapshots, cur)
        if any(s.name == name for s in existing):
            raise AlreadyExists(f"VM {cur.name!r} has a snapshot named {name!r} already")

        def found(result: Any) -> Snapshot:
            if isinstance(result, Snapshot):
                return result
            return self.get(cur.id, name)

        return self._hv.run(
            "snapshots.create",
            cur.name,
            lambda: self._b.create_snapshot(cur, name, description, memory, quiesce),
            wait=wait,
            timeout=timeout,
            progress=progress,
            then=found,
            undo=lambda result: self._remove_made(cur, result),
        )

    def _remove_made(self, vm: VM, result: Any) -> None:
        """Undo a snapshot create that finished after its caller gave up, by the snapshot's id."""
        snap_id = result.id if isinstance(result, Snapshot) else result if isinstance(result, str) else None
        if not snap_id:
            raise HvkitError(f"snapshots.create on {vm.name!r} returned no snapshot id to remove")
        with self._hv.translating("snapshots.create clean-up"):
            made = next((s for s in self._b.list_snapshots(vm) if s.id == snap_id), None)
            if made is None:
                return
            task = self._b.delete_snapshot(vm, made, False)
            if isinstance(task, Task):
                task.wait(self._hv.task_timeout)

    def revert(self, snapshot: Snapshot, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Return the VM to the snapshot (its power state too, where the snapshot kept memory)."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.revert")
        snap, cur = self._resolve(snapshot)
        return self._hv.run(
            "snapshots.revert",
            cur.name,
            lambda: self._b.revert_snapshot(cur, snap),
            wait=wait,
            timeout=timeout,
            then=lambda _: self._hv.vms.get(cur.id),
        )

    def delete(
        self, snapshot: Snapshot, *, children: bool = False, wait: bool = True, timeout: float | None = None
    ) -> Any:
        """Delete a snapshot (its data merges into its children); ``children=True`` removes the subtree."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.delete")
        snap, cur = self._resolve(snapshot)
        return self._hv.run(
            "snapshots.delete",
            cur.name,
            lambda: self._b.delete_snapshot(cur, snap, children),
            wait=wait,
            timeout=timeout,
            then=lambda _: None,
        )

    def _resolve(self, snapshot: Snapshot) -> tuple[Snapshot, VM]:
        if not isinstance(snapshot, Snapshot):
            raise InvalidSpec(f"expected a Snapshot (from snapshots.list or create), got {type(snapshot).__name__}")
        cur = self._hv.vms.get(snapshot.vm)
        return self.get(cur.id, snapshot.id), cur
