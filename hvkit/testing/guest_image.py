"""A tiny bootable guest disk for tests that boot real guests, built from Debian packages only.

:func:`build_guest_image` makes (and caches in ``$HVKIT_CACHE``, default ``~/.cache/hvkit``) a raw
disk image that holds:

* the Debian cloud kernel (the ``linux-image-*-cloud-amd64`` package that ``linux-image-cloud-amd64``
  depends on, fetched with ``apt-get download``),
* an initramfs made of ``busybox-static`` and the few kernel modules a QEMU guest needs
  (virtio block and net, the ACPI power button),
* the extlinux boot loader (``extlinux`` package), installed in the volume boot record of the
  whole-disk ext2 file system, so SeaBIOS boots it directly,
* a marker file, ``/hvkit-marker``.

At boot the guest prints ``HVKIT-GUEST-MARKER: <content of /hvkit-marker read from its own disk>`` on
its serial console, asks for a DHCP lease on its first NIC (and prints ``HVKIT-GUEST-IP: <address>``),
and powers off when the ACPI power button is pressed (so graceful shutdown works). It boots under
QEMU software emulation (TCG) in a few seconds.

:func:`wait_for_marker` reads a guest's serial output and waits for the marker line.

Building the base image needs root (a loop mount, to let extlinux install itself); the marker of a
cached image is changed with ``debugfs``, without mounting. Tools used: ``apt-get``, ``dpkg-deb``,
``mke2fs``, ``debugfs``, ``extlinux``, ``mount``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "IP_PREFIX",
    "MARKER_PREFIX",
    "build_guest_image",
    "cache_dir",
    "find_marker",
    "wait_for_marker",
]

MARKER_PREFIX = "HVKIT-GUEST-MARKER:"
IP_PREFIX = "HVKIT-GUEST-IP:"
IMAGE_MIB = 48
_LAYOUT_VERSION = "3"  # bump when the image layout changes, to rebuild cached images
_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "button", "evdev", "ahci", "sd_mod")
_BUSYBOX = Path("/bin/busybox")
_EXTLINUX_CONF = """DEFAULT hvkit
TIMEOUT 1
PROMPT 0
LABEL hvkit
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND console=ttyS0,115200 quiet panic=-1
"""
_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "/modules/$m.ko" 2>/dev/null; done
for ev in /sys/class/input/event*; do
  if grep -q "Power Button" "$ev/device/name" 2>/dev/null; then
    (dd if="/dev/input/${ev##*/}" bs=24 count=1 >/dev/null 2>&1 &&
      echo "HVKIT-GUEST-POWEROFF" > /dev/console && poweroff -f) &
  fi
done
disk=""
for i in $(seq 1 100); do
  for d in /dev/vda /dev/sda; do [ -b "$d" ] && disk="$d" && break 2; done
  usleep 50000
done
mkdir -p /mnt
if [ -n "$disk" ] && mount -t ext2 -o ro "$disk" /mnt; then
  echo "HVKIT-GUEST-MARKER: $(cat /mnt/hvkit-marker)" > /dev/console
else
  echo "HVKIT-GUEST-NODISK" > /dev/console
fi
if [ -e /sys/class/net/eth0 ]; then
  ip link set lo up
  ip link set eth0 up
  udhcpc -i eth0 -s /udhcpc.sh -t 30 -T 1 -b -S >/dev/null 2>&1
fi
while true; do sleep 3600; done
"""
_UDHCPC = r"""#!/bin/sh
case "$1" in
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
    echo "HVKIT-GUEST-IP: $ip" > /dev/console
    ;;
esac
"""


def cache_dir() -> Path:
    """Where built images are kept: ``$HVKIT_CACHE`` or ``~/.cache/hvkit``."""
    return Path(os.environ.get("HVKIT_CACHE") or Path.home() / ".cache" / "hvkit").expanduser()


def build_guest_image(marker: str = "hvkit", *, directory: Path | None = None) -> Path:
    """Return the path of a cached raw bootable image whose marker file holds ``marker``.

    The image is a base (built once) with its marker file rewritten; copy it before giving it to a
    VM (e.g. upload it into a volume) - the cached file is shared by every caller.
    """
    if not marker or "\n" in marker or len(marker) > 200:
        raise ValueError("marker must be one non-empty line of at most 200 characters")
    root = (directory or cache_dir()) / "guest"
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(marker.encode()).hexdigest()[:16]
    target = root / f"guest-{_LAYOUT_VERSION}-{digest}.raw"
    if target.exists():
        return target
    base = _base_image(root)
    with _lock(root / ".lock"):
        if target.exists():
            return target
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(base, tmp)
        with tempfile.TemporaryDirectory() as work:
            text = Path(work) / "marker"
            text.write_text(marker + "\n")
            _run(["debugfs", "-w", "-R", "rm hvkit-marker", str(tmp)])
            _run(["debugfs", "-w", "-R", f"write {text} hvkit-marker", str(tmp)])
        tmp.rename(target)
    return target


def _base_image(root: Path) -> Path:
    base = root / f"base-{_LAYOUT_VERSION}.raw"
    if base.exists():
        return base
    with _lock(root / ".lock"):
        if base.exists():
            return base
        with tempfile.TemporaryDirectory(dir=root) as work_text:
            work = Path(work_text)
            kernel_dir = _kernel(root, work)
            stage = work / "stage"
            (stage / "boot").mkdir(parents=True)
            vmlinuz = next((kernel_dir / "boot").glob("vmlinuz-*"))
            shutil.copyfile(vmlinuz, stage / "boot" / "vmlinuz")
            (stage / "boot" / "initrd.gz").write_bytes(_initramfs(kernel_dir))
            (stage / "boot" / "extlinux.conf").write_text(_EXTLINUX_CONF)
            (stage / "hvkit-marker").write_text("hvkit\n")
            image = work / "image.raw"
            with image.open("wb") as fh:
                fh.truncate(IMAGE_MIB * 1024 * 1024)
            _run(["mke2fs", "-q", "-F", "-t", "ext2", "-L", "hvkit", "-d", str(stage), str(image)])
            mnt = work / "mnt"
            mnt.mkdir()
            _run(["mount", "-o", "loop", str(image), str(mnt)])
            try:
                _run(["extlinux", "--install", str(mnt / "boot")])
            finally:
                _run(["umount", str(mnt)])
            image.rename(base)
    return base


def _kernel(root: Path, work: Path) -> Path:
    """apt-get download the cloud kernel package (cached) and unpack it into ``work``."""
    debs = sorted(root.glob("linux-image-*-cloud-amd64_*.deb"))
    if not debs:
        out = _run(["apt-cache", "depends", "linux-image-cloud-amd64"])
        found = re.search(r"Depends:\s*(linux-image-\S+-cloud-amd64)", out)
        if not found:
            raise RuntimeError("apt-cache finds no kernel behind linux-image-cloud-amd64 (run apt-get update)")
        _run(["apt-get", "download", "-q", found.group(1)], cwd=root)
        debs = sorted(root.glob("linux-image-*-cloud-amd64_*.deb"))
    unpacked = work / "kernel"
    _run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)])
    return unpacked


def _initramfs(kernel_dir: Path) -> bytes:
    modules = {p.name[:-3].replace("-", "_"): p for p in kernel_dir.glob("lib/modules/*/kernel/**/*.ko")}
    order: list[str] = []

    def add(name: str) -> None:
        if name in order or name not in modules:
            return
        found = re.search(rb"depends=([\w,-]*)\x00", modules[name].read_bytes())
        for dep in found.group(1).decode().split(",") if found and found.group(1) else []:
            add(dep.replace("-", "_"))
        order.append(name)

    for name in _MODULES:
        add(name)
    archive = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "mnt", "modules", "tmp"):
        archive.add_dir(d)
    archive.add_file("bin/busybox", _BUSYBOX.read_bytes(), 0o755)
    archive.add_file("init", _INIT.encode(), 0o755)
    archive.add_file("udhcpc.sh", _UDHCPC.encode(), 0o755)
    archive.add_file("modules.order", ("\n".join(order) + "\n").encode(), 0o644)
    for name in order:
        archive.add_file(f"modules/{name}.ko", modules[name].read_bytes(), 0o644)
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)


class _Cpio:
    """A minimal writer of the ``newc`` cpio format the kernel unpacks."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        raw_name = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw_name), 0)
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + raw_name)
        self._out.write(b"\0" * (-(len(header) + len(raw_name)) % 4))
        self._out.write(data)
        self._out.write(b"\0" * (-len(data) % 4))

    def add_dir(self, name: str) -> None:
        self._entry(name, 0o040755, b"")

    def add_file(self, name: str, data: bytes, perm: int) -> None:
        self._entry(name, 0o100000 | perm, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"")
        return self._out.getvalue()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


# -- reading the serial console -------------------------------------------------------------------------
def find_marker(text: str) -> str | None:
    """The marker text of the first marker line in ``text``, or None."""
    for line in text.splitlines():
        if MARKER_PREFIX in line:
            return line.split(MARKER_PREFIX, 1)[1].strip()
    return None


def wait_for_marker(source: Path | str | Callable[[], str], marker: str | None = None, timeout: float = 120.0) -> str:
    """Wait until the guest's serial output shows its marker line; return the marker text.

    ``source`` is the path of a serial log file (what the kvm backend reports as
    ``vm.extra["serial_log"]``) or a function returning the output so far (for example
    ``lambda: hv.backend.read_serial(vm)``, which reads the pty through libvirt). With ``marker``,
    wait for that text precisely, and raise AssertionError when another disk's marker shows up.
    """
    if callable(source):
        read = source
    else:
        path = Path(source)

        def read() -> str:
            try:
                return path.read_text(errors="replace")
            except FileNotFoundError:
                return ""

    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = read()
        found = find_marker(seen)
        if found is not None:
            if marker is not None and found != marker:
                raise AssertionError(f"the guest booted a disk marked {found!r}, expected {marker!r}")
            return found
        time.sleep(0.25)
    raise TimeoutError(f"no {MARKER_PREFIX} line on the serial console in {timeout:g} s; output: {seen[-800:]!r}")
