"""Cross-vendor migration: plan, disk export / convert / transfer / import, verification, journal.

>>> plan = hvkit.migration.plan(src_hv, "web-1", dst_hv, network_map={"VM Network": "vmbr0"})
>>> print(plan)                      # steps, mapped config, bytes to move, problems and warnings
>>> result = plan.run(progress=True, start=True)

A backend joins every path by implementing the disk export/import contract of
:class:`hvkit.backend.Backend` (``export_disk`` / ``import_disk``, or just ``local_path``, or the
volume download/upload streams the defaults build on).
"""

from __future__ import annotations

from .._images import SshNode, allocated_bytes, convert_image, ssh_export
from ._errors import ChecksumMismatch, MigrationError, PlanProblems
from ._journal import Journal
from ._plan import DiskPlan, MigrationPlan, NicPlan, plan
from ._run import DiskResult, MigrationResult, Progress, resume, rollback, run
from ._verify import ALGORITHM, ALGORITHMS, Checksum, checksum

__all__ = [
    "ALGORITHM",
    "ALGORITHMS",
    "Checksum",
    "ChecksumMismatch",
    "DiskPlan",
    "DiskResult",
    "Journal",
    "MigrationError",
    "MigrationPlan",
    "MigrationResult",
    "NicPlan",
    "PlanProblems",
    "Progress",
    "SshNode",
    "allocated_bytes",
    "checksum",
    "convert_image",
    "plan",
    "resume",
    "rollback",
    "run",
    "ssh_export",
]
