"""A real Samba server on loopback exporting the host model's drives as its administrative shares (C$, D$).

Windows offers every drive to administrators as ``\\\\host\\C$``; hvkit's Hyper-V backend reads and writes
VHD/VHDX files there (smbprotocol). smbd runs in the foreground with its whole configuration, state and
password database in a temporary folder, on 127.0.0.1 and a free port; the host's user maps to the
account smbd runs as.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["SambaShares", "samba_available"]


def samba_available() -> bool:
    """smbd and pdbedit are installed and this process may run them (smbd wants root for its files)."""
    import os

    return shutil.which("smbd") is not None and shutil.which("pdbedit") is not None and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SambaShares:
    """smbd serving ``{share: folder}`` to ``user``/``password`` on 127.0.0.1:``port``."""

    def __init__(self, shares: dict[str, Path], user: str, password: str) -> None:
        self.shares, self.user, self.password = shares, user, password
        self._tmp = tempfile.TemporaryDirectory(prefix="samba-")
        self.dir = Path(self._tmp.name)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SambaShares:
        import getpass

        account = getpass.getuser()  # smbd maps the host's user to the account it runs as
        self.port = _free_port()
        d = self.dir
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "log"):
            (d / sub).mkdir()
        (d / "users.map").write_text(f"{account} = {self.user}\n")
        shares = "".join(
            f"[{name}]\n  path = {path}\n  read only = no\n  valid users = {account}\n  force user = {account}\n"
            for name, path in self.shares.items()
        )
        conf = d / "smb.conf"
        conf.write_text(
            "[global]\n"
            "  server role = standalone server\n"
            f"  smb ports = {self.port}\n"
            "  interfaces = 127.0.0.1\n  bind interfaces only = yes\n"
            f"  private dir = {d}/private\n  lock directory = {d}/lock\n  state directory = {d}/state\n"
            f"  cache directory = {d}/cache\n  pid directory = {d}/pid\n  ncalrpc dir = {d}/ncalrpc\n"
            f"  log file = {d}/log/smbd.log\n  passdb backend = tdbsam:{d}/private/passdb.tdb\n"
            f"  username map = {d}/users.map\n"
            "  server min protocol = SMB2_10\n  disable netbios = yes\n  load printers = no\n"
            "  printing = bsd\n  printcap name = /dev/null\n  disable spoolss = yes\n  map to guest = never\n" + shares
        )
        subprocess.run(
            ["pdbedit", "--configfile", str(conf), "-a", "-u", account, "-t"],
            input=f"{self.password}\n{self.password}\n".encode(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        self._proc = subprocess.Popen(
            ["smbd", "--foreground", "--no-process-group", "--configfile", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # smbd signals its whole process group when it stops: keep it in its own
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"smbd exited at start: {(d / 'log' / 'smbd.log').read_text(errors='replace')[-800:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("smbd did not start listening within 20 s")

    def stop(self) -> None:
        if self._proc is not None:
            import os
            import signal

            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)  # smbd and the helpers it forked
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
        self._tmp.cleanup()
