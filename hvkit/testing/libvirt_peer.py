"""A second libvirt host on this machine, for migration tests: libvirtd + virtlogd in their own namespaces.

The peer runs in its own network namespace (``ip netns``), its own mount namespace (bind mounts over
``/etc/libvirt``, ``/var/lib/libvirt``, ``/var/cache/libvirt``, ``/var/log/libvirt`` and ``/run/libvirt``
give it its own configuration, state, images, logs and sockets) and its own UTS namespace (its own
hostname), with its own host UUID. Paths inside the peer equal the system daemon's
(``/var/lib/libvirt/images/x.qcow2``) yet name other files, as on two real hosts.

Reach it from this machine through its UNIX socket (:attr:`LibvirtPeer.uri`). Two peers can be
linked by a veth pair (:func:`link`) whose addresses exist only inside the two peers' network
namespaces; a peer started with ``listen_tcp=True`` then also accepts ``qemu+tcp://ADDRESS/system``
(auth none: tests only) from the other peer, and QEMU migrates over that link.

Needs root, ``ip`` (iproute2), ``nsenter``/``unshare`` (util-linux), libvirtd and virtlogd::

    peer = LibvirtPeer("hvpeer1")
    peer.start()
    try:
        ...  # libvirt.open(peer.uri)
    finally:
        peer.stop()  # kills its guests and daemons, removes its namespace and files
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

__all__ = ["LibvirtPeer", "link", "sweep_peers", "unlink"]

_BINDS = {"etc": "/etc/libvirt", "lib": "/var/lib/libvirt", "cache": "/var/cache/libvirt", "log": "/var/log/libvirt"}


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


class LibvirtPeer:
    """One libvirtd (with its virtlogd) in its own network, mount and UTS namespaces."""

    def __init__(
        self,
        name: str,
        *,
        address: str | None = None,
        listen_tcp: bool = False,
        qemu_user: str = "libvirt-qemu",
        qemu_group: str = "kvm",
        base: str | None = None,
    ) -> None:
        if len(name) > 15:
            raise ValueError("a peer name is at most 15 characters (it names network interfaces)")
        self.name = name
        self.address = address  # set by link(); the peer's address on the veth link
        self.listen_tcp = listen_tcp
        self.qemu_user = qemu_user
        self.qemu_group = qemu_group
        self.host_uuid = str(uuidlib.uuid4())
        self.base = Path(base or tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
        self.netns = name
        self._started = False

    # -- addresses -------------------------------------------------------------------------------------
    @property
    def socket(self) -> str:
        return str(self.base / "run" / "libvirt-sock")

    @property
    def uri(self) -> str:
        """The peer's libvirt URI from this machine's own namespaces."""
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def tcp_uri(self) -> str:
        """The peer's libvirt URI over the veth link (from a linked peer)."""
        if self.address is None:
            raise RuntimeError(f"peer {self.name} has no address (link it first)")
        return f"qemu+tcp://{self.address}/system"

    @property
    def exchange(self) -> Path:
        """A directory seen at the same path by this machine, the system daemon and every peer (for sockets)."""
        return self.base / "x"

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Create the namespaces and configuration; start virtlogd and libvirtd; wait for the socket.

        A start that fails at any point (or is interrupted) stops what it started: no namespace, daemon or
        file of the peer stays.
        """
        self._started = True  # from here on, stop() has something to remove
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        for sub in ("etc/qemu", "lib/images", "lib/qemu", "cache/qemu", "log/qemu", "run", "x"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for directory in [self.base, *self.base.rglob("*")]:
            if directory.is_dir():
                directory.chmod(0o755)
        (self.base / "x").chmod(0o1777)  # QEMU (as qemu_user) creates its migration sockets here
        self._write_config()
        # QEMU's capabilities, probed already by the system daemon: saves seconds per start
        caps = Path("/var/cache/libvirt/qemu/capabilities")
        if caps.is_dir():
            shutil.copytree(caps, self.base / "cache/qemu/capabilities", dirs_exist_ok=True)
        if not Path(f"/run/netns/{self.netns}").exists():
            _run("ip", "netns", "add", self.netns)
        _run("ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up")
        listen = " -l" if self.listen_tcp else ""
        binds = "\n".join(f"mount --bind {self.base / sub} {target}" for sub, target in _BINDS.items())
        script = f"""set -e
mount --make-rprivate /
{binds}
mount --bind {self.base / "run"} /run/libvirt
hostname {self.name}
virtlogd -d -p {self.base / "run/virtlogd.pid"}
libvirtd -d{listen} -p {self.base / "run/libvirtd.pid"}
"""
        # nsenter keeps the host's /sys (ip netns exec would mount a fresh one and hide the cgroup mounts)
        done = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--uts", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot start the libvirt peer {self.name}: {done.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _run("virsh", "-q", "-c", self.uri, "version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            log = self._log_tail()
            raise RuntimeError(f"the libvirt peer {self.name} did not answer within {timeout:g} s: {log}")
        self._ensure_default_pool()

    def _write_config(self) -> None:
        listen = ""
        if self.listen_tcp and self.address:  # plain TCP without authentication: test set-ups only
            listen = f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{self.address}"\nauth_tcp = "none"\n'
        (self.base / "etc/libvirtd.conf").write_text(
            f'host_uuid = "{self.host_uuid}"\n'
            'unix_sock_group = "root"\nunix_sock_rw_perms = "0770"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            f'{listen}log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
        )
        migration = f'migration_address = "{self.address}"\nmigration_host = "{self.address}"\n' if self.address else ""
        (self.base / "etc/qemu.conf").write_text(
            f'user = "{self.qemu_user}"\ngroup = "{self.qemu_group}"\nsecurity_driver = "none"\n'
            # cgroups are the system daemon's: a second daemon's machine groups would clash with its names
            "cgroup_controllers = [ ]\n"
            f'vnc_listen = "127.0.0.1"\n{migration}'
        )

    def _ensure_default_pool(self) -> None:
        xml = "<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>"
        (self.base / "x/pool.xml").write_text(xml)
        for cmd in (("pool-define", str(self.base / "x/pool.xml")), ("pool-start", "default")):
            _run("virsh", "-q", "-c", self.uri, *cmd)

    def _log_tail(self) -> str:
        path = self.base / "log/libvirtd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def pids(self) -> list[int]:
        """Every process in the peer's network namespace (its daemons and their QEMUs)."""
        return _netns_pids(self.netns)

    def stop(self) -> None:
        """Stop the peer's guests and daemons, remove its namespace and files. Safe to call twice, and after
        a start that failed halfway; every part is attempted even when one fails."""
        if self._started:
            if Path(self.socket).exists():
                with contextlib.suppress(Exception):  # stop guests the civil way first: QEMU outlives libvirtd
                    for dom in _run("virsh", "-q", "-c", self.uri, "list", "--name", check=False).stdout.split():
                        _run("virsh", "-q", "-c", self.uri, "destroy", dom, check=False)
            _end_netns(self.netns)
            self._started = False
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LibvirtPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _netns_pids(netns: str) -> list[int]:
    with contextlib.suppress(Exception):
        return [int(p) for p in _run("ip", "netns", "pids", netns, check=False).stdout.split()]
    return []


def _end_netns(netns: str) -> None:
    """Kill every process in the network namespace (TERM, then KILL), then delete the namespace."""
    if not Path(f"/run/netns/{netns}").exists():
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _netns_pids(netns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline and _netns_pids(netns):
            time.sleep(0.05)
    with contextlib.suppress(Exception):
        _run("ip", "netns", "del", netns, check=False)


def sweep_peers(prefix: str) -> list[str]:
    """Remove every peer whose name starts with ``prefix`` (a run's own prefix): its processes, network
    namespace and files under /tmp, whatever a test or a failed start left. Return what is still there."""
    if not prefix:
        raise ValueError("a sweep needs a prefix")
    names = sorted(p.name for p in Path("/run/netns").glob(f"{prefix}*")) if Path("/run/netns").is_dir() else []
    for name in names:
        _end_netns(name)
    for base in Path("/tmp").glob(f"{prefix}*-*"):
        if base.is_dir() and not base.is_symlink():
            shutil.rmtree(base, ignore_errors=True)
    left = [f"netns {p.name}" for p in Path("/run/netns").glob(f"{prefix}*")] if Path("/run/netns").is_dir() else []
    return left + [f"dir {p}" for p in Path("/tmp").glob(f"{prefix}*-*")]


def link(a: LibvirtPeer, b: LibvirtPeer, a_address: str, b_address: str, prefix: int = 30) -> None:
    """Join two peers' network namespaces by a veth pair; the addresses exist only inside those namespaces.

    Call before :meth:`LibvirtPeer.start` for the peers to listen and migrate on those addresses.
    """
    for peer in (a, b):
        if not Path(f"/run/netns/{peer.netns}").exists():
            _run("ip", "netns", "add", peer.netns)
        peer._started = True  # stop() removes the namespace
    end_a, end_b = f"{a.name[:11]}-v0", f"{b.name[:11]}-v1"
    _run("ip", "link", "add", end_a, "netns", a.netns, "type", "veth", "peer", "name", end_b, "netns", b.netns)
    for peer, end, address in ((a, end_a, a_address), (b, end_b, b_address)):
        _run("ip", "-n", peer.netns, "addr", "add", f"{address}/{prefix}", "dev", end)
        _run("ip", "-n", peer.netns, "link", "set", end, "up")
        peer.address = address


def unlink(a: LibvirtPeer) -> None:
    """Remove the veth pair of :func:`link` (deleting either peer's namespace removes it too)."""
    _run("ip", "-n", a.netns, "link", "del", f"{a.name[:11]}-v0", check=False)
