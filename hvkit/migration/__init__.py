"""Cross-vendor migration: plan, disk export / convert / transfer / import, verification, journal."""

from __future__ import annotations

from ._disk import allocated_bytes, convert_image
from ._errors import ChecksumMismatch, MigrationError, PlanProblems
from ._verify import Checksum, checksum

__all__ = [
    "Checksum",
    "ChecksumMismatch",
    "MigrationError",
    "PlanProblems",
    "allocated_bytes",
    "checksum",
    "convert_image",
]
