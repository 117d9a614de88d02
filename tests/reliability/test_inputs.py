"""Bad input is refused with a clear hvkit error before anything reaches a hypervisor.

Targeted cases first (each one a report of what a new user tried), then hypothesis fuzz of every public
constructor, URL and CLI argument. The fuzz counts what it tried and what held; run with ``-s`` to see it.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import errors
from hvkit._options import ConnectOptions, as_float, as_int
from hvkit._url import URL, parse_url
from hvkit.backends.sim import forget


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
    ],
)
def test_backend_options_are_typed(url: str, message: str) -> None:
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
