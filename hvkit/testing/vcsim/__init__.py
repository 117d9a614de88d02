"""Build and run vcsim, VMware's vSphere API simulator, for tests.

Debian ships the simulator as a Go library (``golang-github-vmware-govmomi-dev``) but no program, so
hvkit keeps a small launcher (``main.go`` beside this file). :func:`build` compiles it once into a
cache directory (keyed on the source's hash); :class:`Vcsim` starts it on 127.0.0.1 with a fresh
self-signed certificate (written to a file usable as ``ca_file``) and stops it::

    with Vcsim(VcsimConfig(esx=True)) as sim:
        hv = hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import attrs

__all__ = ["SOURCE", "Vcsim", "VcsimConfig", "VcsimError", "build", "cache_dir"]

SOURCE = Path(__file__).with_name("main.go")
GOPATH = "/usr/share/gocode"


class VcsimError(RuntimeError):
    """The launcher could not be built or started."""


@attrs.frozen
class VcsimConfig:
    """Simulator model and server flags (counts as in govmomi's ``simulator.Model``)."""

    esx: bool = False  # a standalone ESXi host instead of a vCenter
    datacenters: int = 1
    clusters: int = 1
    cluster_hosts: int = 3
    standalone_hosts: int = 1
    resource_pools: int = 0
    portgroups: int = 1
    datastores: int = 1
    vms: int = 2  # per resource pool and per standalone host
    autostart: bool = True
    username: str = "user"
    password: str = attrs.field(default="pass", repr=False)
    listen: str = "127.0.0.1:0"
    delay_ms: int = 0

    def args(self) -> list[str]:
        args = [
            f"-l={self.listen}",
            f"-username={self.username}",
            f"-password={self.password}",
            f"-ds={self.datastores}",
            f"-vm={self.vms}",
            f"-autostart={str(self.autostart).lower()}",
            f"-delay={self.delay_ms}",
        ]
        if self.esx:
            return [*args, "-esx"]
        return [
            *args,
            f"-dc={self.datacenters}",
            f"-cluster={self.clusters}",
            f"-host={self.cluster_hosts}",
            f"-standalone-host={self.standalone_hosts}",
            f"-pool={self.resource_pools}",
            f"-pg={self.portgroups}",
        ]


def cache_dir() -> Path:
    if os.environ.get("HVKIT_VCSIM_CACHE"):
        return Path(os.environ["HVKIT_VCSIM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hvkit" / "vcsim"


def build(*, timeout: float = 600.0) -> Path:
    """Compile the launcher (once per source version) and return the program's path."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    target_dir = cache_dir() / digest
    program = target_dir / "vcsim-launcher"
    if program.exists():
        return program
    go = shutil.which("go") or ("/usr/lib/go/bin/go" if Path("/usr/lib/go/bin/go").exists() else None)
    if go is None:
        raise VcsimError("the Go compiler is missing: apt-get install golang-go golang-github-vmware-govmomi-dev")
    if not (Path(GOPATH) / "src/github.com/vmware/govmomi/simulator").is_dir():
        raise VcsimError("the govmomi simulator library is missing: apt-get install golang-github-vmware-govmomi-dev")
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / ".lock", "w") as lock:  # noqa: PTH123 - one build at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if program.exists():
            return program
        with tempfile.TemporaryDirectory(prefix="vcsim-build-") as tmp:
            shutil.copy(SOURCE, Path(tmp) / "main.go")
            env = {
                **os.environ,
                "GO111MODULE": "off",
                "GOPATH": GOPATH,
                "GOCACHE": str(cache_dir() / "go-build"),
                "GOFLAGS": "",
            }
            out = Path(tmp) / "vcsim-launcher"
            proc = subprocess.run(
                [go, "build", "-o", str(out), "main.go"],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode != 0:
                raise VcsimError(f"building the vcsim launcher failed:\n{proc.stderr[-4000:]}")
            out.replace(program)
    return program


class Vcsim:
    """One running simulator. ``url`` is an hvkit URL (``vcenter://user@127.0.0.1:port``)."""

    def __init__(self, config: VcsimConfig | None = None, *, start_timeout: float = 120.0) -> None:
        self.config = config or VcsimConfig()
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.sdk_url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self.cert_file = ""

    @property
    def username(self) -> str:
        return self.config.username

    @property
    def password(self) -> str:
        return self.config.password

    @property
    def kind(self) -> str:
        return "esxi" if self.config.esx else "vcenter"

    @property
    def url(self) -> str:
        return f"{self.kind}://{self.username}@{self.host}:{self.port}"

    def start(self) -> Vcsim:
        program = build()
        self._tmp = tempfile.TemporaryDirectory(prefix="hvkit-vcsim-")
        self.cert_file = str(Path(self._tmp.name) / "vcsim.pem")
        self._proc = subprocess.Popen(
            [str(program), *self.config.args(), f"-cert={self.cert_file}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = _read_line(self._proc, self._start_timeout)
        try:
            info = json.loads(line)
        except ValueError:
            self.stop()
            raise VcsimError(f"the vcsim launcher did not start: {line!r}") from None
        from urllib.parse import urlsplit

        parts = urlsplit(info["url"])
        self.sdk_url = info["url"]
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        return self

    def set_host_state(self, host: str, state: str) -> None:
        """Take host ``host`` (a moref such as ``host-21``) down or up as vCenter sees it: ``state`` is
        ``notResponding`` or ``disconnected`` (its VMs read disconnected) or ``connected``. The launcher's
        test hook: vcsim 0.24 has no call for it."""
        import ssl
        import urllib.parse
        import urllib.request

        if not self.sdk_url:
            raise VcsimError("vcsim is not running")
        query = urllib.parse.urlencode({"host": host, "state": state})
        base = urllib.parse.urlsplit(self.sdk_url)
        url = f"{base.scheme}://{base.netloc}/hvkit/host-state?{query}"
        context = ssl.create_default_context(cafile=self.cert_file) if base.scheme == "https" else None
        request = urllib.request.Request(url, method="POST")
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            if answer.status != 204:
                raise VcsimError(f"host-state {host} {state}: HTTP {answer.status}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Vcsim:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            raise VcsimError(f"the vcsim launcher printed nothing within {timeout:g} s")
    line = proc.stdout.readline().strip()
    if not line:
        code = proc.wait(10)
        raise VcsimError(f"the vcsim launcher exited with status {code} before listening")
    return line
