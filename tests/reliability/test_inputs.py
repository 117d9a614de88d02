"""Bad input is refused with a clear hvkit error before anything reaches a hypervisor.

Targeted cases first (each one a report of what a new user tried), then hypothesis fuzz of every public
constructor, URL and CLI argument. The fuzz counts what it tried and what held; run with ``-s`` to see it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import math
import os
import subprocess
import sys
import types
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hvkit
from hvkit import CloudInit, DiskBus, DiskFormat, DiskSpec, Firmware, NicModel, NicSpec, VMSpec, _registry, errors
from hvkit._options import ConnectOptions, as_float, as_int
from hvkit._url import URL, parse_url
from hvkit.backends.sim import forget
from hvkit.cli import main as cli_main
from hvkit.testing.recording import RecordingBackend


@pytest.fixture(autouse=True)
def _private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's config or sim state."""
    monkeypatch.setenv("HVKIT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path / "sim-state"))
    for var in ("HVKIT_URL", "HVKIT_PASSWORD", "HVKIT_USERNAME", "HVKIT_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def world() -> Iterator[str]:
    name = f"in{uuid.uuid4().hex[:8]}"
    yield name
    forget(name)


# -- URLs ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must look like kind://host"),
        ("sim://h:\u0668\u0660", "invalid port"),  # Arabic-Indic 80
        ("sim://h:\uff18\uff10", "invalid port"),  # full-width 80
        ("sim://h:+80", "invalid port"),
        ("sim://h:0", "invalid port"),
        ("esxi://[::1]x:80", "after the ']'"),
        ("esxi://[::1]x", "after the ']'"),
        ("esxi://[::1]:", "invalid port"),
        ("s\u0456m://x", "invalid scheme"),  # Cyrillic i
        ("sim+://x", "invalid scheme"),
        ("sim://a b", "host"),
        ("sim://a\x00b", "control character"),
        ("sim://x\n", "control character"),
    ],
)
def test_bad_urls(text: str, message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        parse_url(text)


def test_good_urls_still_parse() -> None:
    assert parse_url("esxi://root@[fe80::1]:443").port == 443
    assert parse_url("esxi://[::1]").host == "::1"
    assert parse_url("proxmox://root@pam@pve1:8006").username == "root@pam"
    assert parse_url("sim://").host is None
    assert str(parse_url("esxi://root@[fe80::1]:443")) == "esxi://root@[fe80::1]:443"  # brackets kept


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": ""},
        {"kind": 5},
        {"kind": "sim", "port": "80"},
        {"kind": "sim", "port": True},
        {"kind": "sim", "port": 70000},
        {"kind": "sim", "host": 5},
        {"kind": "sim", "path": None},
        {"kind": "sim", "query": "a=b"},
        {"kind": "sim", "query": {"a": 1}},
        {"kind": "sim", "transport": 3},
    ],
)
def test_url_constructor_checks_its_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidSpec):
        URL(**kwargs)  # type: ignore[arg-type]


# -- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("task_delay=-5", "task_delay must be at least 0"),
        ("task_delay=nan", "task_delay must be a finite number"),
        ("task_delay=inf", "task_delay must be a finite number"),
        ("task_delay=abc", "task_delay must be a number"),
        ("task_delay=\u0665", "task_delay must be a number"),  # Arabic-Indic 5
        ("hosts=0", "hosts must be between 1"),
        ("hosts=abc", "hosts must be a whole number"),
        ("hosts=1.5", "hosts must be a whole number"),
        ("hosts=\u0663", "hosts must be a whole number"),
        ("host_cpus=-1", "host_cpus must be between"),
        ("pool_gib=0", "pool_gib must be between"),
        ("host_memory_mib=x", "host_memory_mib must be a whole number"),
        ("timeout=nan", "timeout must be a finite number"),
        ("timeout=inf", "timeout must be a finite number"),
        ("timeout=0", "timeout must be at least"),
        ("task_timeout=abc", "task_timeout must be a number"),
        ("task_timeout=-1", "task_timeout must be at least"),
        ("verify_tls=maybe", "verify_tls must be true or false"),
        ("local_files=2", "local_files must be true or false"),
    ],
)
def test_bad_sim_options(world: str, query: str, message: str) -> None:
    with pytest.raises(errors.InvalidSpec, match=message):
        hvkit.connect(f"sim://{world}?{query}")


def test_bad_options_are_refused_even_for_a_world_already_open(world: str) -> None:
    with hvkit.connect(f"sim://{world}"), pytest.raises(errors.InvalidSpec, match="hosts"):
        hvkit.connect(f"sim://{world}?hosts=abc")


def test_good_options_still_work(world: str) -> None:
    with hvkit.connect(f"sim://{world}?hosts=2&task_delay=0&timeout=5", task_timeout="60") as hv:
        assert len(hv.hosts.list()) == 2
        assert hv.task_timeout == 60.0


def test_keyword_options_are_typed_too(world: str) -> None:
    with pytest.raises(errors.InvalidSpec, match="task_delay"):
        hvkit.connect(f"sim://{world}", task_delay=float("nan"))
    with pytest.raises(errors.InvalidSpec, match="hosts"):
        hvkit.connect(f"sim://{world}", hosts=True)
    with pytest.raises(errors.InvalidSpec, match="timeout"):
        hvkit.connect(f"sim://{world}", timeout=True)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidSpec, match="password must be a string"):
        hvkit.connect(f"sim://{world}", password=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (" 7 ", 7), (5, 5), ("-2", -2), ("0012", 12)])
def test_as_int_accepts(value: object, expected: int) -> None:
    assert as_int("n", value, low=-10, high=20) == expected


@pytest.mark.parametrize("value", ["", "1e3", "1.0", "\u0661", "0x10", True, 1.0, None, [1], "9" * 5000])
def test_as_int_refuses(value: object) -> None:
    with pytest.raises(errors.InvalidSpec, match="option n"):
        as_int("n", value, low=-(10**6000), high=10**6000)


@pytest.mark.parametrize(("value", "expected"), [("0.5", 0.5), ("1e2", 100.0), (3, 3.0), (".5", 0.5), ("-0", 0.0)])
def test_as_float_accepts(value: object, expected: float) -> None:
    assert as_float("f", value, low=0, high=1000) == expected


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", math.nan, math.inf, 10**400, True, "\u0661", "1_0"])
def test_as_float_refuses(value: object) -> None:
    with pytest.raises(errors.InvalidSpec, match="option f"):
        as_float("f", value, low=0, high=1e12)


def test_options_reader_methods() -> None:
    options = ConnectOptions(url=parse_url("sim://x"), options={"n": "4", "f": "0.25", "b": "yes"})
    assert options.int_option("n", 1, low=1, high=8) == 4
    assert options.int_option("missing", 3, low=1, high=8) == 3
    assert options.float_option("f", 1.0, low=0, high=1) == 0.25
    assert options.bool_option("b", False) is True
    with pytest.raises(errors.InvalidSpec, match="option n must be between 5 and 8"):
        options.int_option("n", 6, low=5, high=8)


def test_missing_ca_file_is_named_before_connecting(tmp_path: Path, world: str) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(errors.InvalidSpec, match=r"no-such-ca\.pem"):
        hvkit.connect(f"sim://{world}", ca_file=str(missing))
    with pytest.raises(errors.InvalidSpec, match="ca_file"):
        hvkit.connect(f"sim://{world}?ca_file={tmp_path}")  # a folder is not a CA file
    with pytest.raises(errors.InvalidSpec, match=r"no-such-ca\.pem"):
        hvkit.connect(f"proxmox://root@pam@127.0.0.1:9?ca_file={missing}", token="root@pam!t=s")


def test_missing_ca_file_is_fine_when_verification_is_off(tmp_path: Path, world: str) -> None:
    with hvkit.connect(f"sim://{world}", ca_file=str(tmp_path / "none.pem"), verify_tls=False) as hv:
        assert hv.vms.list() == []


# -- sim names are one folder name ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "[..]", "a%2Fb", "a\\b", "x" * 65, "wéb", "a:b"])
def test_sim_names_cannot_leave_the_state_folder(tmp_path: Path, name: str) -> None:
    state = tmp_path / "state"
    with pytest.raises(errors.InvalidSpec, match=r"sim name|host|port"):
        hvkit.connect(f"sim://{name}", state_dir=str(state))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing made, not even the state folder


def test_sim_names_still_accepted(tmp_path: Path) -> None:
    for name in ("lab", "fleet-1a2b", "a.b_c", "0"):
        with hvkit.connect(f"sim://{name}", state_dir=str(tmp_path)) as hv:
            hv.vms.list()
        forget(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "a.b_c", "fleet-1a2b", "lab"]


# -- the CLI: one line and a non-zero exit code, never a traceback -------------------------------------------------


def _cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hvkit", *argv], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVKIT_")}
    env.update(HVKIT_CONFIG=str(tmp_path / "config.toml"), HVKIT_SIM_STATE_DIR=str(tmp_path / "state"), **extra)
    return env


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (["--url", "sim://x?hosts=abc", "vm", "list"], "hosts must be a whole number", 2),
        (["--url", "sim://x?task_delay=abc", "vm", "list"], "task_delay must be a number", 2),
        (["--url", "sim://x?task_delay=nan", "vm", "list"], "task_delay must be a finite number", 2),
        (["--url", "", "vm", "list"], "empty", 2),
        (["--url", "sim://..", "vm", "list"], "sim name", 2),
        (["--url", "sim://x:\u0668\u0660", "vm", "list"], "invalid port", 2),
        (["--url", "esxi://[::1]x:80", "host", "list"], "after the ']'", 2),
        (["--url", "sim://x", "vm", "create", "w", "--cpus", "0"], "cpus must be between", 2),
        (["--url", "sim://x", "vm", "create", "w", "--disk", "0.0000001"], "at least 1 MiB", 2),
        (["--url", "sim://x", "vm", "create", "w", "--disk", "nan"], "finite", 2),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, argv: list[str], message: str, code: int) -> None:
    done = _cli(*argv, env=_cli_env(tmp_path), cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hvkit: error:") and message in lines[0], done.stderr
    assert not (tmp_path / "state.json").exists() and not (tmp_path / "pools").exists()


def test_cli_without_libvirt_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'libvirt' or name.startswith('libvirt.'):\n"
        "            raise ImportError('libvirt is blocked for this test', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    done = _cli("--url", "kvm:///system", "vm", "list", env=_cli_env(tmp_path, PYTHONPATH=str(blocker)))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("hvkit: error:") and "libvirt" in line and "pip install" in line, line


def test_sim_path_traversal_through_the_cli_writes_nothing_outside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = _cli("--url", "sim://..", "vm", "list", env=_cli_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert [p.name for p in tmp_path.iterdir()] == []  # no state.json, no pools/, not even the state folder
    assert not state.exists()


# -- secrets never reach a log, whatever the level -----------------------------------------------------------------


@pytest.fixture
def every_logger_at_debug() -> Iterator[None]:
    pytest.importorskip("proxmoxer")
    importlib.import_module("proxmoxer.backends.https")  # its loggers set their own level on import
    manager = logging.root.manager
    names = ["", "proxmoxer", "proxmoxer.core", "proxmoxer.backends.https", "urllib3", "urllib3.connectionpool"]
    loggers = [logging.getLogger(n) for n in names] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    before = {lg: lg.level for lg in loggers}
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    yield
    for lg, level in before.items():
        lg.setLevel(level)


def test_no_secret_in_proxmox_debug_logs(every_logger_at_debug: None, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("proxmoxer")
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    ci_password = "Ci-Pa55-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    with ProxmoxSimulator(nodes=1, task_delay=0.01) as sim:
        secrets = {sim.token_secret, sim.password, ci_password}
        for login in ({"token": sim.token}, {"password": sim.password}):
            with hvkit.connect(sim.url, ca_file=sim.ca_file, timeout=10, **login) as hv:  # type: ignore[arg-type]
                spec = hvkit.VMSpec(
                    name=f"s{uuid.uuid4().hex[:6]}",
                    memory_mib=256,
                    disks=[hvkit.DiskSpec(size_gib=0.01, pool="local")],
                    cloud_init=hvkit.CloudInit(username="ops", password=ci_password),
                )
                vm = hv.vms.start(hv.vms.create(spec))
                console = hv.vms.console(vm)
                assert console.password
                secrets.add(console.password)
                secrets.update(t for t in sim.tickets)  # login tickets (PVE:...) and their CSRF tokens
                secrets.update(csrf for _, csrf, _ in sim.tickets.values())
                hv.vms.delete(vm, force=True)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "proxmoxer" in {r.name.split(".")[0] for r in caplog.records}  # the SDK did log at DEBUG
    assert "cipassword" in text  # the field is there, only its value is hidden
    leaked = sorted(s for s in secrets if s and s in text)
    assert not leaked, f"{len(leaked)} secrets in the DEBUG log"


@pytest.mark.parametrize(
    "line",
    [
        "POST https://pve:8006/api2/json/nodes/pve1/qemu {'vmid': 100, 'cipassword': 'S3CRET', 'ciuser': 'ops'}",
        """Status code: 200, output: b'{"data": {"ticket": "S3CRET", "CSRFPreventionToken": "S3CRET"}}'""",
        """output: b'{"data":{"ticket":"PVE:root@pam:S3CRET::sig"}}'""",
        """{"password":"S3\\"CRET"}""",
        """{\\"password\\": \\"S3CRET\\"}""",
        "{'token_value': 'S3CRET'}",
        "{'password': b'S3CRET'}",
        "{'api_token': 12345678}".replace("12345678", "S3CRET"),
        "Authorization: PVEAPIToken=root@pam!hvkit=S3CRET",
        "headers={'Authorization': 'PVEAPIToken=root@pam!hvkit=S3CRET'}",
        "Cookie: PVEAuthCookie=S3CRET; other=1",
        "username=root@pam&password=S3CRET&realm=pam",
        "GET /?vncticket=S3CRET&port=5900",
        "ticket PVEVNC:S3CRET given",
        "new login ticket PVE:root@pam:S3CRET",
    ],
)
def test_redact_hides_each_form(line: str) -> None:
    from hvkit._secrets import redact

    cleaned = redact(line)
    assert "S3CRET" not in cleaned and "CRET" not in cleaned and "***" in cleaned, cleaned


def test_redact_keeps_plain_text() -> None:
    from hvkit._secrets import redact

    line = "POST /api2/json/access/ticket 200 {'vmid': 100, 'name': 'web', 'sshkeys': 'ssh-ed25519%20AAAA'}"
    assert redact(line) == line


def test_filter_is_on_sdk_loggers_and_their_children(caplog: pytest.LogCaptureFixture) -> None:
    from hvkit._secrets import install_redaction

    child = logging.getLogger("proxmoxer.test_child_" + uuid.uuid4().hex[:6])
    install_redaction()
    caplog.set_level(logging.DEBUG)
    child.setLevel(logging.DEBUG)
    child.debug("body %s", {"password": "S3CRET"})
    child.info("ticket %r", b'{"ticket": "PVEVNC:S3CRET"}')
    assert len(caplog.records) == 2 and "S3CRET" not in caplog.text


# -- backend options go through the one typed reader --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("proxmox://root@pam@127.0.0.1:9?lock_retries=abc", "lock_retries must be a whole number"),
        ("proxmox://root@pam@127.0.0.1:9?lock_retries=0", "lock_retries must be between 1"),
        ("esxi://root@127.0.0.1:9?page_size=abc", "page_size must be a whole number"),
        ("esxi://root@127.0.0.1:9?page_size=-1", "page_size must be between"),
        ("esxi://root@127.0.0.1:9?task_timeout=nan", "task_timeout must be a finite number"),
        ("vbox:///?lock_retries=abc", "lock_retries must be a whole number"),
        ("vbox:///?lock_backoff=nan", "lock_backoff must be a finite number"),
        ("vbox:///?long_timeout=-1", "long_timeout must be at least"),
        ("vbox+ssh://u@127.0.0.1?ssh_port=\u0662\u0662", "ssh_port must be a whole number"),
    ],
)
def test_backend_options_are_typed(url: str, message: str) -> None:
    if not url.startswith("vbox"):
        pytest.importorskip("proxmoxer" if url.startswith("proxmox") else "pyVmomi")
    with pytest.raises(errors.InvalidSpec, match=message):
        hvkit.connect(url, password="pw", token="root@pam!t=s" if url.startswith("proxmox") else None)


def test_proxmox_ssh_port_is_typed() -> None:
    pytest.importorskip("proxmoxer")
    from hvkit.backends.proxmox import _disks

    for bad in ("\u0662\u0662", "0", "abc", "70000"):
        backend = types.SimpleNamespace(options=ConnectOptions(url=parse_url("proxmox://h"), options={"ssh_port": bad}))
        with pytest.raises(errors.InvalidSpec, match="ssh_port"):
            _disks.ssh_node(backend, "pve1")  # type: ignore[arg-type]


def test_proxmox_reserved_snapshot_name_never_reaches_the_vendor_as_is() -> None:
    """``current`` is PVE's name for "now": it is refused up front, or stored under another id."""
    pytest.importorskip("proxmoxer")
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    with (
        ProxmoxSimulator(nodes=1, task_delay=0.01) as sim,
        hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10) as hv,
    ):
        vm = hv.vms.create(hvkit.VMSpec(name="snapper", memory_mib=256))
        posts = len([r for r in sim.requests if r[0] == "POST" and r[1].endswith("/snapshot")])
        try:
            snap = hv.snapshots.create(vm, "current")
        except errors.InvalidSpec as exc:
            assert "current" in str(exc)
            assert len([r for r in sim.requests if r[0] == "POST" and r[1].endswith("/snapshot")]) == posts
        else:
            assert snap.name == "current" and snap.id != "current"
        hv.vms.delete(vm, force=True)


# -- fuzz: every public constructor, URL and CLI argument ----------------------------------------------------------
#
# Each example is "held" when the call either succeeded with a well-formed result or raised an hvkit error, and, when
# the input was refused, no backend call was made. Anything else fails the test (hypothesis shrinks it first).

_SCALE = float(os.environ.get("HVKIT_FUZZ_SCALE", "1"))  # more cases: HVKIT_FUZZ_SCALE=10


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=max(1, int(examples * _SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


TALLY: dict[str, list[int]] = {}  # target -> [tried, held, refused with an hvkit error]


def _count(target: str, *, held: bool, refused: bool) -> None:
    counts = TALLY.setdefault(target, [0, 0, 0])
    counts[0] += 1
    counts[1] += held
    counts[2] += refused


def _tally(target: str, call: Callable[[], object]) -> object:
    """Run ``call`` and count it; an exception outside hvkit.errors is a failure (counted, then re-raised)."""
    try:
        result = call()
    except errors.HvkitError as exc:
        _count(target, held=True, refused=True)
        return exc
    except BaseException:
        _count(target, held=False, refused=False)
        raise
    _count(target, held=True, refused=False)
    return result


_PIECES = [
    "",
    " ",
    "a",
    "web-1",
    "..",
    ".",
    "a/b",
    "a\\b",
    "a\x00b",
    "tab\t",
    "nl\n",
    "\u202e",
    "\u0668\u0660",
    "\uff18",
    "é",
    "\ud800",
    "x" * 90,
    "ssh-rsa AAA",
    "#cloud-config\n",
    "nan",
    "inf",
    "-inf",
    "-5",
    "0",
    "1",
    "1e-12",
    "abc",
    "52:54:00:12:34:56",
    "01:00:5e:00:00:01",
    "current",
    "default",
    "qcow2",
    "uefi",
    "virtio",
    "[::1]",
    "%2F",
    "true",
    "yes",
    "2",
    "1.5",
    "\u0665",
    "9" * 30,
]
text = st.one_of(st.sampled_from(_PIECES), st.text(max_size=24))
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 16, 767, 768, 769, 65535, 65536, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-12, 1 / 1024, 0.5, -0.0, 1e308]),
    text,
    st.binary(max_size=6),
)
anything = st.one_of(
    scalar,
    st.lists(scalar, max_size=3),
    st.tuples(scalar),
    st.frozensets(st.one_of(st.integers(), text), max_size=3),
    st.dictionaries(st.one_of(text, st.integers()), scalar, max_size=2),
    st.builds(object),
)


def _field(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly a valid value (so that valid specs are tried too), else anything at all."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda pick: valid if pick < 8 else anything)


good_disk = st.builds(DiskSpec, size_gib=st.sampled_from([0.01, 1, 2.5]), pool=st.sampled_from([None, "default"]))
good_nic = st.builds(NicSpec, network=st.just("default"), mac=st.sampled_from([None, "52:54:00:00:00:01"]))
disk_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "size_gib": _field(st.floats(min_value=0.001, max_value=100)),
        "pool": _field(st.sampled_from(["default", "local"])),
        "format": _field(st.sampled_from(["raw", "qcow2", DiskFormat.VMDK])),
        "bus": _field(st.sampled_from(["virtio", "scsi"])),
        "name": _field(st.sampled_from(["d0", "data"])),
        "volume": _field(st.sampled_from(["default/vol.qcow2", "local:100/vm-100-disk-0.qcow2"])),
    },
)
nic_kwargs = st.fixed_dictionaries(
    {"network": _field(st.sampled_from(["default", "VM Network"]))},
    optional={
        "mac": _field(st.sampled_from(["52:54:00:12:34:56", "52-54-00-AB-CD-EF"])),
        "model": _field(st.sampled_from(["virtio", "e1000", NicModel.VMXNET3])),
    },
)
cloud_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "user_data": _field(st.sampled_from(["#cloud-config\n", "#!/bin/sh\n"])),
        "hostname": _field(st.sampled_from(["web", "web-1.example.org"])),
        "username": _field(st.sampled_from(["ops", "Administrator"])),
        "password": _field(st.sampled_from(["pw", "p@ss w0rd"])),
        "ssh_keys": _field(st.lists(st.sampled_from(["ssh-ed25519 AAAA me", "ssh-rsa BBBB"]), max_size=2)),
        "network_config": _field(st.sampled_from(["version: 2\n"])),
    },
)
vm_kwargs = st.fixed_dictionaries(
    {"name": _field(st.sampled_from(["web-1", "db", "Wéb <1>"]))},
    optional={
        "cpus": _field(st.integers(min_value=1, max_value=8)),
        "memory_mib": _field(st.integers(min_value=16, max_value=4096)),
        "disks": _field(st.lists(good_disk, max_size=2)),
        "nics": _field(st.lists(good_nic, max_size=2)),
        "firmware": _field(st.sampled_from(["bios", "uefi", Firmware.UEFI])),
        "guest_os": _field(st.sampled_from(["linux", "windows"])),
        "host": _field(st.sampled_from([None, "host-0"])),
        "notes": _field(st.sampled_from(["", "two\nlines"])),
        "tags": _field(st.frozensets(st.sampled_from(["web", "prod"]))),
        "cloud_init": _field(st.builds(CloudInit, hostname=st.just("h"))),
        "extra": _field(st.dictionaries(st.sampled_from(["k", "v"]), st.integers(), max_size=2)),
    },
)


def _well_formed_vm_spec(spec: VMSpec) -> None:
    assert isinstance(spec.name, str) and spec.name.strip() == spec.name and spec.name
    assert type(spec.cpus) is int and type(spec.memory_mib) is int and spec.cpus >= 1 and spec.memory_mib >= 16
    assert isinstance(spec.disks, tuple) and all(isinstance(d, DiskSpec) for d in spec.disks)
    assert isinstance(spec.nics, tuple) and all(isinstance(n, NicSpec) for n in spec.nics)
    assert isinstance(spec.tags, frozenset) and all(isinstance(t, str) and t for t in spec.tags)
    assert isinstance(spec.notes, str) and isinstance(spec.firmware, Firmware)
    for disk in spec.disks:
        assert disk.volume is not None or disk.size_bytes >= 1024 * 1024


@fuzz(300)
@given(vm_kwargs)
def test_fuzz_vm_spec(kwargs: dict[str, object]) -> None:
    result = _tally("VMSpec", lambda: VMSpec(**kwargs))  # type: ignore[arg-type]
    if isinstance(result, VMSpec):
        _well_formed_vm_spec(result)


@fuzz(250)
@given(disk_kwargs)
def test_fuzz_disk_spec(kwargs: dict[str, object]) -> None:
    result = _tally("DiskSpec", lambda: DiskSpec(**kwargs))  # type: ignore[arg-type]
    if isinstance(result, DiskSpec):
        assert result.volume is not None or 1024 * 1024 <= result.size_bytes <= 64 * 1024**4
        assert isinstance(result.bus, DiskBus)


@fuzz(200)
@given(nic_kwargs)
def test_fuzz_nic_spec(kwargs: dict[str, object]) -> None:
    result = _tally("NicSpec", lambda: NicSpec(**kwargs))  # type: ignore[arg-type]
    if isinstance(result, NicSpec):
        assert result.mac is None or (len(result.mac) == 17 and result.mac == result.mac.lower())


@fuzz(250)
@given(cloud_kwargs)
def test_fuzz_cloud_init(kwargs: dict[str, object]) -> None:
    result = _tally("CloudInit", lambda: CloudInit(**kwargs))  # type: ignore[arg-type]
    if isinstance(result, CloudInit):
        assert isinstance(result.ssh_keys, tuple) and all(isinstance(k, str) and " " in k for k in result.ssh_keys)
        if result.password is not None:  # the repr does not depend on the password (a " " is in any repr)
            assert repr(result) == repr(attrs.evolve(result, password="another-secret"))


url_parts = st.fixed_dictionaries(
    {"kind": _field(st.sampled_from(["sim", "kvm", "proxmox"]))},
    optional={
        "transport": _field(st.sampled_from(["ssh", "tls"])),
        "username": _field(st.sampled_from(["root", "root@pam"])),
        "password": _field(st.sampled_from(["pw"])),
        "host": _field(st.sampled_from(["lab", "::1", "10.0.0.1"])),
        "port": _field(st.integers(min_value=1, max_value=65535)),
        "path": _field(st.sampled_from(["", "/system"])),
        "query": _field(st.dictionaries(st.sampled_from(["a", "hosts"]), st.sampled_from(["1", "x"]), max_size=2)),
    },
)


@fuzz(200)
@given(url_parts)
def test_fuzz_url_constructor(kwargs: dict[str, object]) -> None:
    result = _tally("URL", lambda: URL(**kwargs))  # type: ignore[arg-type]
    if isinstance(result, URL):
        assert parse_url(result.render(hide_secrets=False)).kind == result.kind or result.host is None


url_text = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}{}://{}{}{}{}{}".format,
        st.sampled_from(["sim", "kvm", "esxi", "proxmox", "SIM", "s\u0456m", "", "sim+ssh", "sim+"]),
        st.just(""),
        st.sampled_from(["", "root@", "root:pw@", "a:b:c@", "@"]),
        st.one_of(st.sampled_from(["lab", "[::1]", "[::1]x", "[::1", "..", "h", ""]), text),
        st.sampled_from(["", ":80", ":0", ":65536", ":\u0668\u0660", ":+1", ":", ":8006x"]),
        st.sampled_from(["", "/", "/system", "/a/b"]),
        st.one_of(st.just(""), st.builds("?{}={}".format, text, text)),
    ),
)


@fuzz(300)
@given(url_text)
def test_fuzz_parse_url(text_: str) -> None:
    result = _tally("parse_url", lambda: parse_url(text_))
    if isinstance(result, URL):
        assert result.port is None or 0 < result.port < 65536
        assert result.host is None or not any(c.isspace() for c in result.host)


class _Tracked(RecordingBackend):
    """A recording backend whose instances are kept, to count the calls each connection made."""

    made: ClassVar[list[RecordingBackend]] = []

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        _Tracked.made.append(self)


_OPTION_NAMES = ["task_delay", "hosts", "host_cpus", "host_memory_mib", "pool_gib", "timeout", "task_timeout"]
_OPTION_NAMES += ["verify_tls", "local_files", "ca_file", "lock_retries", "page_size"]
connect_args = st.fixed_dictionaries(
    {
        "name": st.one_of(st.sampled_from(["fz-a", "fz-b", "..", "fz-c"]), text),
        "query": st.dictionaries(st.sampled_from(_OPTION_NAMES), st.one_of(st.sampled_from(["0", "1", "3"]), text)),
    },
    optional={
        "username": _field(st.sampled_from(["ops"])),
        "password": _field(st.sampled_from(["pw"])),
        "token": _field(st.sampled_from(["t=s"])),
        "timeout": _field(st.floats(min_value=0.1, max_value=60)),
        "verify_tls": _field(st.booleans()),
        "hosts": _field(st.integers(min_value=1, max_value=4)),
        "task_delay": _field(st.sampled_from([0, 0.0, 0.001])),
    },
)


@pytest.fixture(scope="module")
def recording() -> Iterator[None]:
    hvkit.register("fuzzrec", f"{__name__}:_Tracked")
    yield
    _registry._registered.pop("fuzzrec", None)


@fuzz(150)
@given(connect_args)
def test_fuzz_connect(recording: None, args: dict[str, Any]) -> None:
    name, query = args.pop("name"), args.pop("query")
    url = f"fuzzrec://{name}" + ("?" + urllib.parse.urlencode(query, errors="surrogatepass") if query else "")
    _Tracked.made.clear()
    result = _tally("connect", lambda: hvkit.connect(url, **args))
    if isinstance(result, hvkit.Hypervisor):
        result.vms.list()
        result.close()
        forget(name)
    elif isinstance(result, errors.InvalidSpec):
        assert [b.calls for b in _Tracked.made] in ([], [[]]), "a refused connection reached the backend"


@pytest.fixture(scope="module")
def rec_hv(recording: None) -> Iterator[tuple[hvkit.Hypervisor, RecordingBackend]]:
    name = f"fzc{uuid.uuid4().hex[:6]}"
    with hvkit.connect(f"fuzzrec://{name}", task_delay=0) as hv:
        yield hv, hv.backend  # type: ignore[misc]
    forget(name)


@fuzz(150)
@given(vm_kwargs, st.one_of(st.none(), st.floats(min_value=5, max_value=60), anything))
def test_fuzz_create(rec_hv: tuple[hvkit.Hypervisor, RecordingBackend], kwargs: dict[str, Any], timeout: Any) -> None:
    hv, backend = rec_hv
    before = len(backend.mutating_calls())

    def create() -> object:
        return hv.vms.create(VMSpec(**kwargs), timeout=timeout)

    result = _tally("vms.create", create)
    if isinstance(result, hvkit.VM):
        hv.vms.delete(result, force=True)
    elif isinstance(result, errors.InsufficientCapacity):  # only the hypervisor knows its free room: nothing made
        assert not [v for v in hv.vms.list() if v.name == kwargs.get("name")], "a create refused for room left a VM"
    elif isinstance(result, errors.InvalidSpec):
        assert len(backend.mutating_calls()) == before, "a refused create reached the backend"


@fuzz(250)
@example(verb="volume", number=4096, name="snap1")  # more room than the pool has: refused by the hypervisor
@given(
    st.sampled_from(["reconfigure", "snapshot", "clone", "stop", "start", "volume"]),
    st.one_of(st.integers(min_value=1, max_value=4), anything),
    st.one_of(st.sampled_from(["snap1", "copy-1"]), anything),
)
def test_fuzz_vm_calls(rec_hv: tuple[hvkit.Hypervisor, RecordingBackend], verb: str, number: Any, name: Any) -> None:
    hv, backend = rec_hv
    vm = next((v for v in hv.vms.list() if v.name == "fz-target"), None) or hv.vms.create(
        VMSpec(name="fz-target", memory_mib=64, disks=[DiskSpec(size_gib=0.01)])
    )
    before = len(backend.mutating_calls())
    calls: dict[str, Callable[[], object]] = {
        "reconfigure": lambda: hv.vms.reconfigure(vm, cpus=number, memory_mib=256),
        "snapshot": lambda: hv.snapshots.create(vm, name),
        "clone": lambda: hv.vms.clone(vm, name, linked=bool(number == 1)),
        "stop": lambda: hv.vms.stop(vm, timeout=number),
        "start": lambda: hv.vms.start(vm, timeout=number),
        "volume": lambda: hv.volumes.create("default", name, size_gib=number),
    }
    result = _tally(f"vms.{verb}", calls[verb])
    if isinstance(result, errors.InsufficientCapacity):  # only the hypervisor knows its free room: nothing made
        left = [v for v in hv.volumes.list() if v.name.rsplit(".", 1)[0] == name]
        assert not left, f"a {verb} refused for room left a volume"
    elif isinstance(result, errors.InvalidSpec):
        assert len(backend.mutating_calls()) == before, f"a refused {verb} reached the backend"
    for vm_ in hv.vms.list():
        if vm_.name != "fz-target":
            hv.vms.delete(vm_, force=True)
    for snap in hv.snapshots.list(vm):
        hv.snapshots.delete(snap)
    for volume in hv.volumes.list():
        if isinstance(name, str) and volume.name.startswith(name) and name:
            with contextlib.suppress(errors.HvkitError):
                hv.volumes.delete(volume)


_CLI_VERBS = [
    ["vm", "list"],
    ["vm", "show"],
    ["vm", "create"],
    ["vm", "start"],
    ["vm", "stop"],
    ["vm", "delete"],
    ["vm", "clone"],
    ["snapshot", "create"],
    ["snapshot", "list"],
    ["host", "list"],
    ["pool", "list"],
    ["network", "list"],
    ["backends"],
]
cli_url = st.one_of(st.sampled_from(["fuzzrec://fz-cli", "", "fuzzrec://..", "sim://x?hosts=abc"]), url_text)
command_argv = st.builds(
    lambda url, verb, positional, flags: (["--url", url] if url is not None else []) + verb + positional + flags,
    st.one_of(st.none(), cli_url),
    st.sampled_from(_CLI_VERBS),
    st.lists(st.one_of(st.sampled_from(["web-1", "fz-cli-vm", "snap"]), text), max_size=2),
    st.lists(
        st.one_of(
            st.sampled_from(["--json", "--force", "--linked"]),
            st.tuples(
                st.sampled_from(["--cpus", "--memory", "--disk", "--nic", "--firmware", "--timeout", "--host"]),
                st.one_of(st.sampled_from(["1", "0", "-1", "nan", "inf", "1e-12", "0.01", "default:xx"]), text),
            ).map(list),
        ),
        max_size=3,
    ).map(lambda items: [x for item in items for x in (item if isinstance(item, list) else [item])]),
)
migrate_argv = st.builds(
    lambda source, target, vm, maps: [
        *("migrate", "--dry-run", "--no-progress", "--from", source, "--to", target, vm),
        *maps,
    ],
    cli_url,
    cli_url,
    st.one_of(st.sampled_from(["web-1", ""]), text),
    st.lists(
        st.tuples(st.sampled_from(["--network-map", "--storage-map", "--format"]), text).map(list), max_size=2
    ).map(lambda items: [x for item in items for x in item]),
)
fleet_argv = st.lists(st.tuples(st.just("-m"), cli_url).map(list), min_size=1, max_size=2).map(
    lambda items: ["fleet", "list", *[x for item in items for x in item]]
)
cli_argv = st.one_of(command_argv, command_argv, migrate_argv, fleet_argv)


@fuzz(120)
@given(cli_argv)
def test_fuzz_cli(recording: None, argv: list[str]) -> None:
    _Tracked.made.clear()
    out, err = io.StringIO(), io.StringIO()
    held = False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli_main(argv)
            except SystemExit as exc:  # argparse: usage and one error line, exit code 2
                code = exc.code if isinstance(exc.code, int) else 2
                assert code == 2 or (code == 0 and "--help" in argv)
                held = True
                return
        message = err.getvalue().strip().splitlines()
        if code != 0:
            assert len(message) == 1 and message[0].startswith("hvkit: error:"), err.getvalue()
            assert "unexpected" not in message[0], message[0]  # a bug, not a refusal
        if code == 2:
            mutating = [c for b in _Tracked.made for c in b.mutating_calls() if c not in ("connect", "close")]
            assert not mutating, f"refused input reached the backend: {mutating}"
        held = True
    finally:
        _count("cli", held=held, refused=held and code != 0)


@pytest.mark.parametrize("state_dir", [5, "a\x00b", "FILE", "~no-such-user-hvkit/x"])
def test_bad_sim_state_dir_is_invalid_spec(tmp_path: Path, world: str, state_dir: object) -> None:
    if state_dir == "FILE":
        state_dir = tmp_path / "a-file"
        state_dir.write_text("x")
    with pytest.raises(errors.InvalidSpec, match="state_dir"):
        hvkit.connect(f"sim://{world}", state_dir=state_dir)


def test_a_refused_sim_option_makes_no_world_folder(tmp_path: Path, world: str) -> None:
    for query in ("task_delay=nan", "hosts=0", "pool_gib=x"):
        with pytest.raises(errors.InvalidSpec):
            hvkit.connect(f"sim://{world}?{query}", state_dir=str(tmp_path / "state"))
    assert not (tmp_path / "state").exists()


def test_profile_must_be_a_name() -> None:
    with pytest.raises(errors.InvalidSpec, match="profile"):
        hvkit.connect(profile=5)  # type: ignore[arg-type]


@fuzz(200)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=10, max_size=30),
    st.sampled_from(
        [
            "{{'password': '{s}'}}",
            "{{'cipassword': '{s}', 'ciuser': 'ops'}}",
            'b\'{{"data": {{"ticket": "PVEVNC:{s}", "port": "5900"}}}}\'',
            '{{"CSRFPreventionToken": "{s}"}}',
            "Cookie: PVEAuthCookie=PVE:root@pam:{s}",
            "Authorization: PVEAPIToken=root@pam!hvkit={s}",
            "password={s}&username=root@pam",
            "vncticket={s}",
            "{{'token_value': '{s}'}}",
        ]
    ),
    st.text(max_size=20),
    st.text(max_size=20),
)
def test_fuzz_redact(secret: str, template: str, before: str, after: str) -> None:
    from hvkit._secrets import redact

    line = before + " " + template.format(s=secret) + " " + after
    cleaned = _tally("redact", lambda: redact(line))
    assert isinstance(cleaned, str) and secret not in cleaned.replace(before, "").replace(after, ""), cleaned


def test_zz_fuzz_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """The figures of this run's fuzz (run the whole file to see every target)."""
    tried, held, refused = (sum(c[i] for c in TALLY.values()) for i in range(3))
    detail = ", ".join(f"{k} {h}/{t} ({r} refused)" for k, (t, h, r) in sorted(TALLY.items()))
    with capsys.disabled():
        print(
            f"\ninput fuzz: {tried} cases tried, {held} held, {refused} of them refused with an hvkit error ({detail})"
        )
    assert held == tried, detail


@pytest.mark.parametrize("members", [None, 5, 1.5, object()])
def test_fleet_refuses_what_is_not_a_list_of_members(members: Any) -> None:
    from hvkit.fleet import Fleet

    with pytest.raises(errors.InvalidSpec, match="Fleet takes a list"):
        Fleet(members)
