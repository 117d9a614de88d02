"""What a user asks for: VMSpec, DiskSpec, NicSpec, CloudInit. Validated when built."""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..errors import InvalidSpec
from ._checks import (
    check_int,
    check_number,
    check_optional_str,
    check_text,
    has_control,
    shown,
    spec_mapping,
    spec_tuple,
    string_set,
    string_tuple,
)
from .enums import DiskBus, DiskFormat, Firmware, GuestOS, NicModel, to_enum

__all__ = ["CloudInit", "DiskSpec", "NicSpec", "VMSpec", "check_name", "check_sizing", "normalize_mac"]

MAX_NAME = 80
MAX_CPUS = 768
MAX_MEMORY_MIB = 24 * 1024 * 1024  # 24 TiB
MIN_MEMORY_MIB = 16
MAX_DISK_GIB = 64 * 1024
MIN_DISK_GIB = 1 / 1024  # 1 MiB
MAX_DISKS = 60
MAX_NICS = 32
MAX_NOTES = 64 * 1024
MAX_VOLUME_ID = 4096
MAX_SSH_KEY = 16 * 1024
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_USERNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def check_name(what: str, name: object) -> str:
    """Validate an object name: non-empty, at most 80 characters, no control characters or '/'."""
    if not isinstance(name, str):
        raise InvalidSpec(f"{what} must be a string, got {type(name).__name__}")
    if not name or name != name.strip():
        raise InvalidSpec(f"{what} {name!r} is empty or has leading/trailing blanks")
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"{what} {name[:20]!r}... is {len(name)} characters long; at most {MAX_NAME}")
    if "/" in name or "\\" in name or has_control(name):
        raise InvalidSpec(f"{what} {name!r} contains '/', '\\' or a control character")
    return name


def normalize_mac(mac: str) -> str:
    """Return a MAC as lower-case colon-separated octets; accept '-' separators."""
    if not isinstance(mac, str):
        raise InvalidSpec(f"MAC address must be a string like 52:54:00:12:34:56, got {shown(mac)}")
    text = mac.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(text):
        raise InvalidSpec(f"MAC address {shown(mac)} is not six hex octets like 52:54:00:12:34:56")
    if int(text[:2], 16) & 1:
        raise InvalidSpec(f"MAC address {mac!r} is a multicast address; a NIC needs a unicast one")
    return text


def check_sizing(cpus: int | None, memory_mib: int | None) -> None:
    """Validate CPU count and memory size against the same limits as VMSpec."""
    if cpus is not None:
        check_int("cpus", cpus, 1, MAX_CPUS)
    if memory_mib is not None:
        check_int("memory_mib", memory_mib, MIN_MEMORY_MIB, MAX_MEMORY_MIB)


def _to_format(value: DiskFormat | str | None) -> DiskFormat | None:
    return None if value is None else to_enum(DiskFormat, value)


def _to_bus(value: DiskBus | str) -> DiskBus:
    return to_enum(DiskBus, value)


def _to_model(value: NicModel | str) -> NicModel:
    return to_enum(NicModel, value)


def _to_firmware(value: Firmware | str) -> Firmware:
    return to_enum(Firmware, value)


def _to_guest_os(value: GuestOS | str) -> GuestOS:
    return to_enum(GuestOS, value)


@attrs.frozen
class DiskSpec:
    """A disk to create (``size_gib`` in ``pool``), an existing volume to attach (``volume``) or a copy of an
    image (``image``, see :mod:`hvkit.images`): a full copy, or with ``linked=True`` a copy-on-write volume over
    the image's own (the backend's overlay format, so no ``format``; Unsupported without ``volume.linked``)."""

    size_gib: float | None = None
    pool: str | None = None
    format: DiskFormat | None = attrs.field(default=None, converter=_to_format)
    bus: DiskBus = attrs.field(default=DiskBus.VIRTIO, converter=_to_bus)
    name: str | None = None
    volume: str | None = None  # id of an existing volume to attach instead of creating one
    image: str | None = None  # name of an image (hv.images) the disk is a copy of
    linked: bool = False  # with image: a linked (copy-on-write) copy instead of a full one

    def __attrs_post_init__(self) -> None:
        given = [k for k in ("size_gib", "volume", "image") if getattr(self, k) is not None]
        if not given:
            raise InvalidSpec("a DiskSpec needs size_gib (a new disk), volume (an existing one) or image (a copy)")
        if len(given) > 1:
            raise InvalidSpec(f"a DiskSpec takes one of size_gib, volume or image, not both {given[0]} and {given[1]}")
        if self.image is not None:
            if not isinstance(self.image, str):
                raise InvalidSpec(f"disk image must be an image name, got {shown(self.image)}")
            check_name("disk image", self.image)
        if not isinstance(self.linked, bool):
            raise InvalidSpec(f"disk linked must be True or False, got {shown(self.linked)}")
        if self.linked and self.image is None:
            raise InvalidSpec("a linked disk (linked=True) is a copy of an image: give image=")
        if self.linked and self.format is not None:
            raise InvalidSpec("a linked disk is in the backend's copy-on-write format: leave format unset")
        if self.size_gib is not None:
            check_number("disk size_gib", self.size_gib, MIN_DISK_GIB, MAX_DISK_GIB, low_text="1 MiB (1/1024)")
        if self.volume is not None:
            if not isinstance(self.volume, str) or not self.volume:
                raise InvalidSpec(f"disk volume must be a non-empty string (a volume id), got {shown(self.volume)}")
            check_text("disk volume", self.volume, limit=MAX_VOLUME_ID, allowed="")
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


def _to_keys(value: object) -> tuple[str, ...]:
    return string_tuple("ssh_keys", "ssh key", value)


@attrs.frozen
class CloudInit:
    """First-boot configuration through cloud-init (NoCloud or the vendor's own channel)."""

    user_data: str | None = None
    hostname: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=lambda v: "None" if v is None else "'***'")
    ssh_keys: tuple[str, ...] = attrs.field(default=(), converter=_to_keys)
    network_config: str | None = None

    def __attrs_post_init__(self) -> None:
        user_data = check_optional_str("cloud-init user_data", self.user_data)
        if user_data is not None and not user_data.startswith(("#cloud-config", "#!", "Content-Type")):
            raise InvalidSpec("cloud-init user_data must start with '#cloud-config', '#!' or be MIME multipart")
        check_optional_str("cloud-init network_config", self.network_config)
        hostname = check_optional_str("cloud-init hostname", self.hostname)
        if hostname is not None:
            _check_hostname(hostname)
        username = check_optional_str("cloud-init username", self.username)
        if username is not None and not _USERNAME.fullmatch(username):
            raise InvalidSpec(
                f"cloud-init username {shown(username)} must start with a letter or '_' and hold letters, "
                "digits, '_', '.' or '-' (at most 64)"
            )
        password = check_optional_str("cloud-init password", self.password)
        if password is not None and (not password or has_control(password)):  # never echo the password
            raise InvalidSpec("cloud-init password must be non-empty, without control characters (None: no password)")
        for key in self.ssh_keys:
            _check_ssh_key(key)


def _check_hostname(name: str) -> None:
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise InvalidSpec(
            f"cloud-init hostname {shown(name)} must be dot-separated labels of letters, digits and '-' "
            "(1-63 each, no '-' at either end)"
        )


def _check_ssh_key(key: str) -> None:
    if not key or len(key) > MAX_SSH_KEY:
        raise InvalidSpec(f"an ssh key must be 1 to {MAX_SSH_KEY} characters, got {len(key)}")
    if "\n" in key or "\r" in key:
        raise InvalidSpec("each ssh key must be one line; pass several keys as a list")
    if has_control(key) or len(key.split()) < 2:
        raise InvalidSpec(f"ssh key {shown(key)} must hold the key type and the key (e.g. 'ssh-ed25519 AAAA... me')")


def _to_disks(value: object) -> tuple[DiskSpec, ...]:
    return spec_tuple("disks", DiskSpec)(value)  # type: ignore[no-any-return]


def _to_nics(value: object) -> tuple[NicSpec, ...]:
    return spec_tuple("nics", NicSpec)(value)  # type: ignore[no-any-return]


def _to_tags(value: object) -> frozenset[str]:
    return string_set("tags", "tag", value)


def _to_extra(value: object) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(spec_mapping("extra", value)))


@attrs.frozen
class VMSpec:
    """Everything needed to create a VM. Raises InvalidSpec when built with bad values."""

    name: str
    cpus: int = 1
    memory_mib: int = 1024
    disks: Sequence[DiskSpec] = attrs.field(default=(), converter=_to_disks)
    nics: Sequence[NicSpec] = attrs.field(default=(), converter=_to_nics)
    firmware: Firmware = attrs.field(default=Firmware.BIOS, converter=_to_firmware)
    guest_os: GuestOS = attrs.field(default=GuestOS.LINUX, converter=_to_guest_os)
    host: str | None = None
    notes: str = ""
    tags: frozenset[str] = attrs.field(factory=frozenset, converter=_to_tags, kw_only=True)
    cloud_init: CloudInit | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_to_extra, hash=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_name("VM name", self.name)
        check_int("cpus", self.cpus, 1, MAX_CPUS)
        check_int("memory_mib", self.memory_mib, MIN_MEMORY_MIB, MAX_MEMORY_MIB)
        if len(self.disks) > MAX_DISKS:
            raise InvalidSpec(f"at most {MAX_DISKS} disks, got {len(self.disks)}")
        if len(self.nics) > MAX_NICS:
            raise InvalidSpec(f"at most {MAX_NICS} NICs, got {len(self.nics)}")
        if self.host is not None:
            check_name("host", self.host)
        check_text("notes", self.notes, limit=MAX_NOTES)
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
