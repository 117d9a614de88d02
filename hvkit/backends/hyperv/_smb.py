"""VHD/VHDX files in and out over SMB (smbprotocol): the host's administrative shares (``\\\\host\\C$``).

Options: ``smb_host`` (default: the WinRM host), ``smb_port`` (445), ``smb_encrypt`` (SMB 3 encryption,
on by default), ``smb_shares`` (``C:/Hyper-V=VMs,...``: a folder served by a named share instead of the
drive's administrative share). The WinRM user and password authenticate (NTLM).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

from ...driver import ProgressFn
from ...errors import AlreadyExists, AuthenticationError, BackendError, ConnectionError, InvalidSpec, NotFound
from ._session import Session

__all__ = ["SmbFiles"]

CHUNK = 4 * 1024 * 1024


class SmbFiles:
    """Reads and writes files on the Hyper-V host by their Windows paths."""

    def __init__(self, s: Session) -> None:
        o = s.options
        self.host = str(o.option("smb_host") or s.host)
        self.port = o.int_option("smb_port", 445, low=1, high=65535)
        self.encrypt = o.bool_option("smb_encrypt", True)
        self.user, self.password = s.username or "", s.password or ""
        self.timeout = s.timeout
        self.shares: list[tuple[str, str]] = []  # (folder prefix, share), longest first
        for item in str(o.option("smb_shares", "") or "").split(","):
            if item.strip():
                folder, eq, share = item.partition("=")
                if not eq or not share.strip():
                    raise InvalidSpec(f"smb_shares: {item!r} is not FOLDER=SHARE (like C:/Hyper-V=VMs)")
                self.shares.append((folder.strip().replace("/", "\\").rstrip("\\"), share.strip()))
        self.shares.sort(key=lambda fs: -len(fs[0]))
        self._cache: dict[str, Any] = {}
        self._registered = False

    def unc(self, path: str) -> str:
        """``C:\\Hyper-V\\x.vhdx`` as ``\\\\host\\C$\\Hyper-V\\x.vhdx`` (or through a named share)."""
        text = path.replace("/", "\\")
        for folder, share in self.shares:
            if text.lower() == folder.lower() or text.lower().startswith(folder.lower() + "\\"):
                return f"\\\\{self.host}\\{share}{text[len(folder) :]}"
        if len(text) < 3 or text[1:3] != ":\\" or not text[0].isalpha():
            raise InvalidSpec(f"{path!r} is not an absolute Windows path")
        return f"\\\\{self.host}\\{text[0].upper()}$\\{text[3:]}"

    def _session(self) -> Any:
        import smbclient  # type: ignore[import-untyped]
        from smbprotocol.exceptions import SMBAuthenticationError, SMBException  # type: ignore[import-untyped]

        if not self._registered:
            try:
                smbclient.register_session(
                    self.host,
                    username=self.user,
                    password=self.password,
                    port=self.port,
                    encrypt=self.encrypt,
                    connection_timeout=self.timeout,
                    connection_cache=self._cache,
                )
            except SMBAuthenticationError as exc:
                raise AuthenticationError(f"the SMB server {self.host}:{self.port} rejected the credentials") from exc
            except (SMBException, OSError, ValueError) as exc:
                raise ConnectionError(
                    f"cannot open SMB to {self.host}:{self.port} ({type(exc).__name__}): file sharing must be "
                    "reachable for disk transfers (options smb_host, smb_port)"
                ) from exc
            self._registered = True
        return smbclient

    @contextlib.contextmanager
    def _errors(self, path: str) -> Any:
        from smbprotocol.exceptions import SMBOSError  # type: ignore[import-untyped]

        try:
            yield
        except SMBOSError as exc:
            if exc.errno == 2:
                raise NotFound(f"no file {path} on the Hyper-V host") from exc
            if exc.errno == 17:
                raise AlreadyExists(f"{path} exists on the Hyper-V host") from exc
            raise BackendError(f"SMB {path}: {exc.strerror}") from exc

    def download(self, path: str, local: Path, progress: ProgressFn, total: int) -> int:
        """Read ``path`` sharing it for reading: a checkpoint's parent file stays open (read) by the VM using it."""
        smb = self._session()
        done = 0
        with (
            self._errors(path),
            smb.open_file(
                self.unc(path), mode="rb", share_access="r", port=self.port, connection_cache=self._cache
            ) as src,
            local.open("wb") as out,
        ):
            while chunk := src.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                progress(done, max(total, done))
        return done

    def upload(self, local: Path, path: str, progress: ProgressFn) -> int:
        """Write ``local`` to the new file ``path`` (never over an existing one)."""
        smb = self._session()
        total = local.stat().st_size
        done = 0
        with (
            self._errors(path),
            smb.open_file(self.unc(path), mode="xb", port=self.port, connection_cache=self._cache) as dst,
            local.open("rb") as src,
        ):
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                done += len(chunk)
                progress(done, total)
        return done

    def replace(self, local: Path, path: str, progress: ProgressFn) -> int:
        """Put ``local`` in place of ``path``: written beside it, then renamed over it."""
        smb = self._session()
        folder, _, name = path.rpartition("\\")
        beside = f"{folder}\\.hvkit-{uuid.uuid4().hex[:12]}-{name}"
        done = self.upload(local, beside, progress)
        try:
            with self._errors(path):
                smb.replace(self.unc(beside), self.unc(path), port=self.port, connection_cache=self._cache)
        except BaseException:
            self.remove(beside)
            raise
        return done

    def remove(self, path: str) -> None:
        smb = self._session()
        with contextlib.suppress(NotFound), self._errors(path):
            smb.remove(self.unc(path), port=self.port, connection_cache=self._cache)

    def close(self) -> None:
        if self._registered:
            import smbclient  # type: ignore[import-untyped]

            with contextlib.suppress(Exception):
                smbclient.reset_connection_cache(connection_cache=self._cache)
            self._registered = False
