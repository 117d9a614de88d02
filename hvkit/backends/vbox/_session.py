"""One connection to VirtualBox: runs VBoxManage here or on a workstation over SSH, the way every mature
VirtualBox tool does (Vagrant, Packer, docker-machine).

* ``vbox:///`` runs ``VBoxManage`` on this machine; ``vbox+ssh://user@host[:port]/`` runs it on ``host``
  through OpenSSH (``ssh -o BatchMode=yes``: keys or an agent, never a password prompt), the command line
  quoted with :func:`shlex.join`. Options: ``vboxmanage`` (the program, default ``VBoxManage``),
  ``ssh_key``, ``ssh_known_hosts`` (host keys are then checked strictly), ``ssh_port``, ``lock_retries``,
  ``lock_backoff``, ``long_timeout`` (seconds for disk copies and clones, default an hour).
* Every run has ``LANG=C LC_ALL=C`` and a timeout; the version is read once (``--version``, tolerant of
  a ``WARNING:`` line before it) and option names follow it (6.1 ``--ostype``, 7.0 ``--os-type``).
* "Already locked by a session" failures are retried with exponential backoff through one hook,
  :func:`retry`; runs that change one VM are serialized within the connection.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TypeVar

from hvkit import errors
from hvkit.driver import ConnectOptions

from . import _parse
from ._errors import VBoxManageError, is_lock_error

__all__ = ["OPTION_NAMES", "Session", "retry"]

T = TypeVar("T")
# modifyvm option spellings that 7.0 renamed (6.1's still work there as legacy aliases; 7.0's fail on 6.1);
# createvm kept --ostype
OPTION_NAMES: dict[str, tuple[str, str]] = {
    "ostype": ("--ostype", "--os-type"),
    "nictype": ("--nictype", "--nic-type"),
    "macaddress": ("--macaddress", "--mac-address"),
    "bridgeadapter": ("--bridgeadapter", "--bridge-adapter"),
    "hostonlyadapter": ("--hostonlyadapter", "--host-only-adapter"),
    "natnetwork": ("--natnetwork", "--nat-network"),
    "vrdeport": ("--vrdeport", "--vrde-port"),
    "vrdeaddress": ("--vrdeaddress", "--vrde-address"),
}
_LONG = {"clonemedium", "clonehd", "clonevm", "export", "import", "snapshot", "unregistervm", "createmedium"}


def retry(
    call: Callable[[], T],
    should_retry: Callable[[BaseException], bool],
    *,
    attempts: int,
    first_delay: float,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; while it fails with an error ``should_retry`` accepts, wait (doubling) and run it again."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not should_retry(exc):
                raise
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


class Session:
    """Runs VBoxManage for one connection; counts the processes it starts (``calls``)."""

    def __init__(self, options: ConnectOptions) -> None:
        url = options.url
        self.options = options
        self.remote = url.transport == "ssh"
        if url.transport not in (None, "ssh"):
            raise errors.InvalidSpec(f"vbox URLs take the transport +ssh only, not +{url.transport}")
        if url.host and not self.remote:
            raise errors.InvalidSpec(f"vbox://{url.host} names a host: use vbox+ssh://user@{url.host} (or vbox:///)")
        if self.remote and not url.host:
            raise errors.InvalidSpec("vbox+ssh:// needs a host: vbox+ssh://user@host")
        self.host = url.host or "localhost"
        self.user = url.username or options.username or getpass.getuser()
        self.port = url.port or options.int_option("ssh_port", 22, low=1, high=65535)
        self.exe = str(options.option("vboxmanage", "VBoxManage"))
        self.timeout = options.timeout
        self.long_timeout = options.float_option("long_timeout", 3600.0, low=1, high=1e7)
        self.lock_retries = options.int_option("lock_retries", 8, low=1, high=100)
        self.lock_backoff = options.float_option("lock_backoff", 0.25, low=0, high=60)
        self.calls = 0
        self.version: tuple[int, int, int] = (0, 0, 0)
        self.version_text = ""
        self._counter = threading.Lock()
        self._vm_locks: dict[str, threading.RLock] = {}
        self._folder: str | None = None
        self.metrics_ready = False  # 'metrics setup' ran on this connection

    # -- version ----------------------------------------------------------------------------------------
    def connect(self) -> None:
        text = self.run(["--version"])
        try:
            self.version, self.version_text = _parse.version(text)
        except ValueError as exc:
            raise errors.ConnectionError(f"{self.exe} on {self.host} did not answer like VBoxManage: {exc}") from None
        if self.version[:2] < (6, 1):
            raise errors.Unsupported("vbox", "connect", f"VirtualBox {self.version_text} is older than 6.1")

    @property
    def v7(self) -> bool:
        return self.version[0] >= 7

    def opt(self, name: str) -> str:
        """The spelling of a renamed option for the connected version."""
        old, new = OPTION_NAMES[name]
        return new if self.v7 else old

    @property
    def host_only_restricted(self) -> bool:
        """Since 6.1.28 host-only networks must lie in 192.168.56.0/21 unless /etc/vbox/networks.conf says more."""
        return self.version >= (6, 1, 28)

    # -- running ------------------------------------------------------------------------------------------
    def argv(self, args: list[str]) -> list[str]:
        if not self.remote:
            return [self.exe, *args]
        return [*self.ssh_prefix(), "env LANG=C LC_ALL=C " + shlex.join([self.exe, *args])]

    def ssh_prefix(self) -> list[str]:
        opts = self.options
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(self.timeout))}", "-p", str(self.port)]
        if opts.option("ssh_key"):
            argv += ["-i", str(opts.option("ssh_key")), "-o", "IdentitiesOnly=yes"]
        if opts.option("ssh_known_hosts"):
            argv += ["-o", f"UserKnownHostsFile={opts.option('ssh_known_hosts')}", "-o", "StrictHostKeyChecking=yes"]
        return [*argv, f"{self.user}@{self.host}", "--"]

    @contextlib.contextmanager
    def serial(self, vm: str | None) -> Iterator[None]:
        """Hold the connection's lock of one VM (by id or name) while a change of it runs."""
        if vm is None:
            yield
            return
        with self._counter:
            lock = self._vm_locks.setdefault(vm, threading.RLock())
        with lock:
            yield

    def run(self, args: list[str], *, vm: str | None = None, timeout: float | None = None) -> str:
        """Run VBoxManage with ``args``; return stdout. Lock errors are retried; others raise VBoxManageError."""
        limit = timeout or (self.long_timeout if args and args[0] in _LONG else self.timeout)
        with self.serial(vm):
            return retry(
                lambda: self._once(args, limit),
                is_lock_error,
                attempts=self.lock_retries,
                first_delay=self.lock_backoff,
            )

    def run_status(self, args: list[str]) -> tuple[int, str, str]:
        """Run once, returning (status, stdout, stderr) without raising on a failure status."""
        proc = self._spawn(args, self.timeout)
        return proc.returncode, proc.stdout, proc.stderr

    def _once(self, args: list[str], timeout: float) -> str:
        proc = self._spawn(args, timeout)
        if proc.returncode != 0:
            raise VBoxManageError(" ".join(args[:1]), proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout

    def _spawn(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LANG": "C", "LC_ALL": "C"}
        with self._counter:
            self.calls += 1
        try:
            proc = subprocess.run(
                self.argv(args), capture_output=True, text=True, env=env, timeout=timeout, check=False
            )
        except FileNotFoundError:
            where = "ssh" if self.remote else self.exe
            raise errors.ConnectionError(f"{where} is not installed or not on PATH (option vboxmanage=...)") from None
        except subprocess.TimeoutExpired:
            raise errors.Timeout(f"VBoxManage {' '.join(args[:2])} did not finish in {timeout:g} s") from None
        if self.remote and proc.returncode == 255:
            raise errors.ConnectionError(
                f"ssh to {self.user}@{self.host}:{self.port} failed: {proc.stderr.strip()[-300:]}"
            )
        if proc.returncode == 127 or (not self.remote and proc.returncode == 126):
            raise errors.ConnectionError(f"{self.exe} cannot be run on {self.host}: {proc.stderr.strip()[-200:]}")
        return proc

    def shell(self, command: str, *, stdin: IO[bytes] | None = None, timeout: float | None = None) -> bytes:
        """Run a plain shell command on the VirtualBox host (over SSH; locally through /bin/sh)."""
        argv = [*self.ssh_prefix(), command] if self.remote else ["/bin/sh", "-c", command]
        proc = subprocess.run(argv, stdin=stdin, capture_output=True, timeout=timeout or self.long_timeout, check=False)
        if proc.returncode != 0:
            kind = errors.ConnectionError if self.remote and proc.returncode == 255 else errors.BackendError
            raise kind(f"on {self.host}: {command.split()[0]} failed: {proc.stderr.decode(errors='replace')[-300:]}")
        return proc.stdout

    # -- shared lookups ------------------------------------------------------------------------------------------
    def machine_folder(self) -> str:
        """The default machine folder (``list systemproperties``), where hvkit keeps VMs and volumes."""
        if self._folder is None:
            blocks = _parse.key_value_blocks(self.run(["list", "systemproperties"]), "API version")
            folder = next((b["Default machine folder"] for b in blocks if b.get("Default machine folder")), "")
            if not folder:
                raise errors.BackendError("VBoxManage list systemproperties names no default machine folder")
            self._folder = folder
        return self._folder
