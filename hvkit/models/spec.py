"""What a user asks for: VMSpec, DiskSpec, NicSpec, CloudInit. Validated when built."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..errors import InvalidSpec
from ._fields import extra_field, tags_field, to_tuple
from .enums import DiskBus, DiskFormat, Firmware, GuestOS, NicModel

__all__ = ["CloudInit", "DiskSpec", "NicSpec", "VMSpec", "check_name", "check_sizing", "normalize_mac"]

MAX_NAME = 80
MAX_CPUS = 768
MAX_MEMORY_MIB = 24 * 1024 * 1024  # 24 TiB
MIN_MEMORY_MIB = 16
MAX_DISK_GIB = 64 * 1024
MAX_DISKS = 60
MAX_NICS = 32
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def check_name(what: str, name: object) -> str:
    """Validate an object name: non-empty, at most 80 characters, no control characters or '/'."""
    if not isinstance(name, str):
        raise InvalidSpec(f"{what} must be a string, got {type(name).__name__}")
    if not name or name != name.strip():
        raise InvalidSpec(f"{what} {name!r} is empty or has leading/trailing blanks")
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"{what} {name[:20]!r}... is {len(name)} characters long; at most {MAX_NAME}")
    if "/" in name or "\\" in name or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidSpec(f"{what} {name!r} contains '/', '\\' or a control character")
    return name


def normalize_mac(mac: str) -> str:
    """Return a MAC as lower-case colon-separated octets; accept '-' separators."""
    text = mac.strip().lower().replace("-", ":")
    if not _MAC.match(text):
        raise InvalidSpec(f"MAC address {mac!r} is not six hex octets like 52:54:00:12:34:56")
    if int(text[:2], 16) & 1:
        raise InvalidSpec(f"MAC address {mac!r} is a multicast address; a NIC needs a unicast one")
    return text


def _positive_int(what: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidSpec(f"{what} must be between {low} and {high}, got {value}")


def check_sizing(cpus: int | None, memory_mib: int | None) -> None:
    """Validate CPU count and memory size against the same limits as VMSpec."""
    if cpus is not None:
        _positive_int("cpus", cpus, 1, MAX_CPUS)
    if memory_mib is not None:
        _positive_int("memory_mib", memory_mib, MIN_MEMORY_MIB, MAX_MEMORY_MIB)


def _enum(kind: type, value: Any) -> Any:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)  # type: ignore[attr-defined]
        raise InvalidSpec(f"{value!r} is not a valid {kind.__name__} (one of: {choices})") from None


def _to_format(value: DiskFormat | str | None) -> DiskFormat | None:
    return None if value is None else _enum(DiskFormat, value)  # type: ignore[no-any-return]


def _to_bus(value: DiskBus | str) -> DiskBus:
    return _enum(DiskBus, value)  # type: ignore[no-any-return]


def _to_model(value: NicModel | str) -> NicModel:
    return _enum(NicModel, value)  # type: ignore[no-any-return]


def _to_firmware(value: Firmware | str) -> Firmware:
    return _enum(Firmware, value)  # type: ignore[no-any-return]


def _to_guest_os(value: GuestOS | str) -> GuestOS:
    return _enum(GuestOS, value)  # type: ignore[no-any-return]


@attrs.frozen
class DiskSpec:
    """A disk to create (``size_gib`` in ``pool``) or an existing volume to attach (``volume``)."""

    size_gib: float | None = None
    pool: str | None = None
    format: DiskFormat | None = attrs.field(default=None, converter=_to_format)
    bus: DiskBus = attrs.field(default=DiskBus.VIRTIO, converter=_to_bus)
    name: str | None = None
    volume: str | None = None  # id of an existing volume to attach instead of creating one

    def __attrs_post_init__(self) -> None:
        if self.volume is None and self.size_gib is None:
            raise InvalidSpec("a DiskSpec needs size_gib (a new disk) or volume (an existing one)")
        if self.volume is not None and self.size_gib is not None:
            raise InvalidSpec("a DiskSpec takes size_gib or volume, not both")
        if self.size_gib is not None:
            if isinstance(self.size_gib, bool) or not isinstance(self.size_gib, int | float):
                raise InvalidSpec(f"disk size_gib must be a number, got {self.size_gib!r}")
            if not 0 < self.size_gib <= MAX_DISK_GIB:
                raise InvalidSpec(f"disk size_gib must be > 0 and <= {MAX_DISK_GIB}, got {self.size_gib}")
        if self.pool is not None:
            check_name("disk pool", self.pool)
        if self.name is not None:
            check_name("disk name", self.name)

    @property
    def size_bytes(self) -> int:
        """Requested size rounded up to a whole MiB."""
        mib = -(-int((self.size_gib or 0) * 1024 * 1024 * 1024) // (1024 * 1024))
        return mib * 1024 * 1024


@attrs.frozen
class NicSpec:
    network: str
    mac: str | None = attrs.field(default=None, converter=attrs.converters.optional(normalize_mac))
    model: NicModel = attrs.field(default=NicModel.VIRTIO, converter=_to_model)

    def __attrs_post_init__(self) -> None:
        check_name("NIC network", self.network)


@attrs.frozen
class CloudInit:
    """First-boot configuration through cloud-init (NoCloud or the vendor's own channel)."""

    user_data: str | None = None
    hostname: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=lambda v: "None" if v is None else "'***'")
    ssh_keys: tuple[str, ...] = attrs.field(default=(), converter=to_tuple)
    network_config: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.user_data is not None and not self.user_data.startswith(("#cloud-config", "#!", "Content-Type")):
            raise InvalidSpec("cloud-init user_data must start with '#cloud-config', '#!' or be MIME multipart")


@attrs.frozen
class VMSpec:
    """Everything needed to create a VM. Raises InvalidSpec when built with bad values."""

    name: str
    cpus: int = 1
    memory_mib: int = 1024
    disks: Sequence[DiskSpec] = attrs.field(default=(), converter=to_tuple)
    nics: Sequence[NicSpec] = attrs.field(default=(), converter=to_tuple)
    firmware: Firmware = attrs.field(default=Firmware.BIOS, converter=_to_firmware)
    guest_os: GuestOS = attrs.field(default=GuestOS.LINUX, converter=_to_guest_os)
    host: str | None = None
    notes: str = ""
    tags: frozenset[str] = tags_field()
    cloud_init: CloudInit | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = extra_field()

    def __attrs_post_init__(self) -> None:
        check_name("VM name", self.name)
        check_sizing(self.cpus, self.memory_mib)
        if len(self.disks) > MAX_DISKS:
            raise InvalidSpec(f"at most {MAX_DISKS} disks, got {len(self.disks)}")
        if len(self.nics) > MAX_NICS:
            raise InvalidSpec(f"at most {MAX_NICS} NICs, got {len(self.nics)}")
        for i, disk in enumerate(self.disks):
            if not isinstance(disk, DiskSpec):
                raise InvalidSpec(f"disks[{i}] must be a DiskSpec, got {type(disk).__name__}")
        for i, nic in enumerate(self.nics):
            if not isinstance(nic, NicSpec):
                raise InvalidSpec(f"nics[{i}] must be a NicSpec, got {type(nic).__name__}")
        _no_duplicates("disk name", [d.name for d in self.disks if d.name])
        _no_duplicates("disk volume", [d.volume for d in self.disks if d.volume])
        _no_duplicates("MAC address", [n.mac for n in self.nics if n.mac])
        for tag in self.tags:
            check_name("tag", tag)
        if self.cloud_init is not None and not isinstance(self.cloud_init, CloudInit):
            raise InvalidSpec("cloud_init must be a CloudInit")


def _no_duplicates(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise InvalidSpec(f"duplicate {what} {value!r}")
        seen.add(value)
