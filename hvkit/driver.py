"""The public kit a backend is built from.

A driver (in hvkit or outside it, registered through the ``hvkit.backends`` entry-point group) imports
only this module, :mod:`hvkit.models`, :mod:`hvkit.errors` and :mod:`hvkit.capabilities`:

* the contract: :class:`Backend` (override the primitive operations the vendor offers, declare them in
  ``capabilities``), :class:`DiskImage`, ``ProgressFn`` and ``Event``;
* :class:`Traits` (with :class:`Limits` and :class:`MacRange`): what the backend declares for the core's
  checks, migration and fleet (disk buses, NIC models, disk export/import, MAC ranges, per-VM limits);
* :class:`ConnectOptions`: the URL, credentials, TLS settings, timeout and URL options of a connection;
* :class:`Rollback`: undo steps of a multi-step operation, run newest first when it fails;
* waiting: :class:`Task`, :class:`TaskInfo`, :class:`TaskSource` (what a vendor task gives the core),
  :func:`wait_for`, the one polling helper, and :class:`ThreadSource` (with :class:`TaskControl`), the one
  thread-backed task source: work in a thread, progress, cancel, a ``retry`` hook (:data:`RetryHook`) and
  undo of the vendor tasks it followed;
* disk images on this machine: :func:`qemu_img`, :func:`image_info`, :func:`image_map`,
  :func:`convert_image`, :class:`SparseWriter`, :func:`write_into`, the default
  :func:`default_export` / :func:`default_import`, and :func:`ssh_export` for vendors whose API has no
  disk download; :mod:`qemuimg` (``create``, ``convert``, ``info``, ``qemu_img``) for the image files a
  backend keeps itself;
* secrets: :func:`install_redaction` puts a :class:`RedactingFilter` on the vendor SDK's loggers (call it
  once the SDK is imported), :func:`redact` masks secrets in a text.
* recording: :func:`cassette_recorder` (a vcrpy recorder that drops credential headers and scrubs bodies
  with the backend's scrubber, in a :data:`RecordMode`), :func:`scrub_body`, :func:`scrub_secrets`.

``docs/architecture.md`` shows how a backend is put together from these parts.
"""

from __future__ import annotations

from ._images import (
    Extent,
    SparseWriter,
    SshNode,
    allocated_bytes,
    convert_image,
    default_export,
    default_import,
    image_info,
    image_map,
    partial_path,
    probe_format,
    qemu_img,
    ssh_export,
    write_into,
)
from ._images import _qemuimg as qemuimg
from ._options import ConnectOptions
from ._recording import RecordMode, cassette_recorder, scrub_body, scrub_secrets
from ._rollback import Rollback
from ._secrets import RedactingFilter, install_redaction, redact
from ._traits import Limits, MacRange, Traits
from .backend import Backend, DiskImage, Event, ProgressFn, VolumeScan
from .tasks import DoneSource, RetryHook, Task, TaskControl, TaskInfo, TaskSource, ThreadSource, wait_for

__all__ = [
    "Backend",
    "ConnectOptions",
    "DiskImage",
    "DoneSource",
    "Event",
    "Extent",
    "Limits",
    "MacRange",
    "ProgressFn",
    "RecordMode",
    "RedactingFilter",
    "RetryHook",
    "Rollback",
    "SparseWriter",
    "SshNode",
    "Task",
    "TaskControl",
    "TaskInfo",
    "TaskSource",
    "ThreadSource",
    "Traits",
    "VolumeScan",
    "allocated_bytes",
    "cassette_recorder",
    "convert_image",
    "default_export",
    "default_import",
    "image_info",
    "image_map",
    "install_redaction",
    "partial_path",
    "probe_format",
    "qemu_img",
    "qemuimg",
    "redact",
    "scrub_body",
    "scrub_secrets",
    "ssh_export",
    "wait_for",
    "write_into",
]
