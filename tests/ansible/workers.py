"""Conversion workers for the scale-out test: real SSH hosts on this machine, each an OpenSSH server in its own
network namespace, listening on that namespace's own loopback. Ansible reaches one through ``ip netns exec``
and a stdin/stdout relay (ProxyCommand), so nothing listens outside the namespaces. Needs root, ``ip`` and sshd.

The filesystem is the machine's: a worker runs this venv's Python and sees the same files (as conversion
hosts sharing a staging area would), while its processes, network and SSH server are its own, and
:meth:`SshWorker.kill` ends all of them at once, as a worker that dies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

RELAY = Path(__file__).parent / "scaleout" / "relay.py"
PROBE = "import socket; socket.create_connection(('127.0.0.1', 22), 1).close()"


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


class SshWorker:
    """One worker: network namespace ``name`` with its own sshd on 127.0.0.1:22, its keys under ``base``."""

    def __init__(self, name: str, base: Path, client_key: Path) -> None:
        self.name = name
        self.base = base / name
        self.client_key = client_key

    @property
    def netns_pids(self) -> list[int]:
        out = _run("ip", "netns", "pids", self.name, check=False).stdout.split()
        return [int(p) for p in out]

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o700)
        key = self.base / "host_ed25519_key"
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        shutil.copy(f"{self.client_key}.pub", self.base / "authorized_keys")
        (self.base / "sshd_config").write_text(
            f"Port 22\nListenAddress 127.0.0.1\nHostKey {key}\nAuthorizedKeysFile {self.base}/authorized_keys\n"
            f"PidFile {self.base}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nX11Forwarding no\n"
            "AllowTcpForwarding no\nMaxStartups 30\nMaxSessions 30\n"
        )
        if not Path(f"/run/netns/{self.name}").exists():
            _run("ip", "netns", "add", self.name)
        _run("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        Path("/run/sshd").mkdir(exist_ok=True)
        _run("ip", "netns", "exec", self.name, "/usr/sbin/sshd", "-f", str(self.base / "sshd_config"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = _run("ip", "netns", "exec", self.name, sys.executable, "-c", PROBE, check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the sshd of worker {self.name} did not start")

    def known_hosts_line(self) -> str:
        key = (self.base / "host_ed25519_key.pub").read_text().split()
        return f"{self.name} {key[0]} {key[1]}\n"

    def inventory_vars(self, known_hosts: Path) -> dict[str, str]:
        proxy = f"ip netns exec {self.name} {sys.executable} {RELAY} 127.0.0.1 22"
        return {
            "ansible_host": "127.0.0.1",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": (
                f"-o ProxyCommand='{proxy}' -o HostKeyAlias={self.name} -o StrictHostKeyChecking=yes "
                f"-o UserKnownHostsFile={known_hosts} -o ControlMaster=no -o ControlPath=none"
            ),
            "ansible_python_interpreter": sys.executable,
        }

    def kill(self) -> list[int]:
        """SIGKILL every process of the worker (its sshd, sessions, and what they run): the worker dies."""
        pids = self.netns_pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def stop(self) -> None:
        self.kill()
        _run("ip", "netns", "del", self.name, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
