"""The disk steps of a migration run: export, checksum on the source side, import, verify on the target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backend import DiskImage
from ..errors import NotFound
from ..models import DiskFormat, Snapshot, Volume
from ._errors import ChecksumMismatch, MigrationError
from ._migration_plan import DiskPlan
from ._results import Progress
from ._target import target_of
from ._undo import Undo
from ._verify import Checksum, algorithm_of, checksum

__all__ = ["DiskSteps"]


def _exported(d: DiskPlan, data: dict[str, Any]) -> DiskImage:
    """The exported image as the journal records it, as large as the source disk.

    An export may be shorter than the disk it reads (a vendor that reports no capacity for a disk whose
    extent is empty or thin, e.g. a new vcsim disk: its download is then 0 bytes); the guest reads zeros
    past its end, and the target volume is made with the source disk's size, not the file's.
    """
    size = max(int(data["size"]), d.size)
    return DiskImage(data["path"], DiskFormat(data["format"]), size, data["temporary"], data["bytes_moved"])


class DiskSteps(Undo):
    """Part of :class:`~._run.Runner`."""

    def _drop_volume(self, d: DiskPlan, volume_id: str) -> dict[str, Any]:
        try:
            self.dst.volumes.delete(volume_id)
        except NotFound:
            pass
        return {}

    def _export(self, d: DiskPlan, snapshot: Snapshot | None) -> DiskImage:
        step = f"disk{d.index}.export"
        state, data = self.journal.state(step)
        if state == "done" and (not data["temporary"] or Path(data["path"]).is_file()):
            return _exported(d, data)

        def export() -> dict[str, Any]:
            volume = self.src.volumes.get(d.source_volume)
            moved = 0

            def prog(done: int, total: int) -> None:
                self.report(Progress(d.name, "export", done, total))

            with self.src.translating("export_disk"):
                img = self.src.backend.export_disk(volume, str(self.journal.staging), prog, snapshot)
            moved = img.bytes_moved
            self.report(Progress(d.name, "export", d.size, d.size))
            return {"path": img.path, "format": img.format.value, "size": img.size, "temporary": img.temporary,
                    "bytes_moved": moved}  # fmt: skip

        return _exported(d, self._step(step, export))

    def _source_checksum(
        self, d: DiskPlan, image: DiskImage, mapped: Callable[[int], None]
    ) -> Checksum | dict[str, Any]:
        step = f"disk{d.index}.checksum"
        state, data = self.journal.state(step)
        if state == "done":
            mapped(int(data["data_bytes"]))
            return data

        def prog(done: int, total: int) -> None:
            self.report(Progress(d.name, "checksum", done, total))

        result: list[Checksum] = []

        def compute() -> dict[str, Any]:
            # one hashing thread: the import's qemu-img convert runs at the same time on the other core
            ck = checksum(
                image,
                size=d.size,
                progress=prog,
                workdir=str(self.journal.staging),
                workers=1,
                algorithm=self.algorithm,
                mapped=mapped,
                # qemu-img maps the source: its process holds no lock the import's thread needs meanwhile, and
                # the target is then read back with hvkit's own reader: two independent readers must agree
                qemu_map=True,
            )
            result.append(ck)
            return {"value": ck.value, "data_bytes": ck.data_bytes, "algorithm": self.algorithm}

        self._step(step, compute)
        return result[0]

    def _import(self, d: DiskPlan, image: DiskImage) -> tuple[Volume, int]:
        step = f"disk{d.index}.import"
        state, data = self.journal.state(step)
        if state == "done" and data.get("volume"):
            try:
                return self.dst.volumes.get(data["volume"]), int(data.get("bytes_moved", 0))
            except NotFound:
                pass
        if state in ("begin", "done"):  # begun (or done but gone): clear what a killed attempt left
            self._clear_import(d, data)
        pool = self.dst.pools.get(d.target_pool)
        # what the import will write, recorded (fsynced) before it writes: a kill before import_disk returns
        # leaves no volume id in the journal, and perhaps a file the target never registered
        target = data.get("target") or target_of(self.dst, pool, d)
        moved = [0]

        def prog(done: int, total: int) -> None:
            moved[0] = max(moved[0], done)
            self.report(Progress(d.name, "import", done, total))

        vols: list[Volume] = []

        def do_import() -> dict[str, Any]:
            with self.dst.translating("import_disk"):
                vol = self.dst.backend.import_disk(pool, d.target_volume, image, d.target_format,
                                                   str(self.journal.staging), prog)  # fmt: skip
            vols.append(vol)
            return {"volume": vol.id, "bytes_moved": moved[0]}

        self._step(step, do_import, target=target)
        return vols[0], moved[0]

    def _verify(self, d: DiskPlan, volume_id: str, source_value: str) -> str:
        step = f"disk{d.index}.verify"
        state, data = self.journal.state(step)
        if state == "done" and data.get("value") == source_value:
            return str(data["value"])

        def prog(done: int, total: int) -> None:
            self.report(Progress(d.name, "verify", done, total))

        algorithm = algorithm_of(source_value)  # the source checksum's own: v1 on a resumed v1 journal
        if algorithm != self.algorithm:
            raise MigrationError(f"disk {d.name}: the source checksum {source_value} is not {self.algorithm}, "
                                 "the journal's algorithm; roll the migration back and run it again")  # fmt: skip

        def verify() -> dict[str, Any]:
            current = self.imported.get(volume_id) or self.dst.volumes.get(volume_id)
            with self.dst.translating("export_disk"):
                img = self.dst.backend.export_disk(current, str(self.journal.staging), lambda a, b: None, None)
            try:
                ck = checksum(img, size=d.size, progress=prog, workdir=str(self.journal.staging), algorithm=algorithm)
            finally:
                if img.temporary:
                    Path(img.path).unlink(missing_ok=True)
            if ck.value != source_value:
                raise ChecksumMismatch(d.name, source_value, ck.value)
            if not ck.tail_zero:
                raise ChecksumMismatch(d.name, source_value, ck.value + " (and non-zero bytes past the source's end)")
            return {"value": ck.value}

        return str(self._step(step, verify)["value"])
