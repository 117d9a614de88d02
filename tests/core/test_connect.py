"""URLs, option precedence, profiles, environment, the registry and its entry points."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

import hvkit
from hvkit import _registry, errors
from hvkit._options import resolve
from hvkit._url import parse_url
from hvkit.backends.sim import SimBackend


@pytest.mark.parametrize(
    ("text", "kind", "transport", "user", "host", "port", "path"),
    [
        ("kvm:///system", "kvm", None, None, None, None, "/system"),
        ("kvm+ssh://admin@host1/system", "kvm", "ssh", "admin", "host1", None, "/system"),
        ("proxmox://root@pam@pve1:8006", "proxmox", None, "root@pam", "pve1", 8006, ""),
        ("vcenter://u@vc/DC1", "vcenter", None, "u", "vc", None, "/DC1"),
        ("esxi://root@[fe80::1]:443", "esxi", None, "root", "fe80::1", 443, ""),
        ("sim://lab", "sim", None, None, "lab", None, ""),
    ],
)
def test_parse_url(
    text: str, kind: str, transport: str | None, user: str | None, host: str | None, port: int | None, path: str
) -> None:
    url = parse_url(text)
    assert (url.kind, url.transport, url.username, url.host, url.port, url.path) == (
        kind,
        transport,
        user,
        host,
        port,
        path,
    )


@pytest.mark.parametrize("text", ["no-scheme", "kvm://host:99999/x", "kvm://host:abc", "://x", "esxi://[::1"])
def test_bad_url_is_invalid_spec(text: str) -> None:
    with pytest.raises(errors.InvalidSpec):
        parse_url(text)


def test_url_hides_password_and_secret_options() -> None:
    url = parse_url("esxi://root:s3cr3t-pw@esx1/?token=tok-123&verify_tls=false")
    for shown in (repr(url), str(url)):
        assert "s3cr3t-pw" not in shown and "tok-123" not in shown and "***" in shown
    assert url.password == "s3cr3t-pw"
    with pytest.raises(errors.InvalidSpec) as info:
        parse_url("esxi://root:s3cr3t-pw@esx1:bad/")
    assert "s3cr3t-pw" not in str(info.value)


def test_precedence_explicit_over_url_over_profile_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.lab]\nurl = "esxi://prof-user@esx1"\npassword_env = "LAB_PW"\ntimeout = 12\nverify_tls = true\n'
        '[profiles.lab.options]\nvm_list = "brief"\n'
    )
    monkeypatch.setenv("HVKIT_CONFIG", str(config))
    monkeypatch.setenv("LAB_PW", "from-env-var")
    monkeypatch.setenv("HVKIT_ESXI_TOKEN", "env-token")
    opts = resolve(None, profile="lab", explicit={}, backend_options={})
    assert (opts.username, opts.password, opts.timeout, opts.token) == ("prof-user", "from-env-var", 12.0, "env-token")
    assert opts.verify_tls is True and opts.option("vm_list") == "brief"
    opts = resolve("esxi://url-user@esx2?verify_tls=false&timeout=5", profile="lab", explicit={}, backend_options={})
    assert (opts.username, opts.url.host, opts.verify_tls, opts.timeout) == ("url-user", "esx2", False, 5.0)
    opts = resolve(
        "esxi://url-user@esx2?verify_tls=false",
        profile="lab",
        explicit={"username": "arg", "verify_tls": True},
        backend_options={},
    )
    assert (opts.username, opts.verify_tls) == ("arg", True)


def test_tls_verification_is_on_by_default() -> None:
    assert resolve("esxi://h", profile=None, explicit={}, backend_options={}).verify_tls is True


@pytest.mark.parametrize("bad", [{"timeout": 0}, {"timeout": "soon"}, {"verify_tls": "maybe"}])
def test_bad_options(bad: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidSpec):
        resolve("esxi://h", profile=None, explicit=bad, backend_options={})


def test_missing_profile_and_bad_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.NotFound, match="no config file"):
        hvkit.connect(profile="nope")
    (tmp_path / "config.toml").write_text("[profiles.a]\nurl = 'sim://'\n")
    with pytest.raises(errors.NotFound, match="profiles there: a"):
        hvkit.connect(profile="nope")
    (tmp_path / "config.toml").write_text("[[[")
    with pytest.raises(errors.InvalidSpec, match="not valid TOML"):
        hvkit.connect(profile="a")


def test_no_url_at_all() -> None:
    with pytest.raises(errors.InvalidSpec, match="no connection URL"):
        hvkit.connect()


def test_connect_by_profile_to_sim(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[profiles.play]\nurl = 'sim://profiled'\n[profiles.play.options]\nhosts = 5\n"
    )
    with hvkit.connect(profile="play") as hv:
        assert hv.kind == "sim" and len(hv.hosts.list()) == 5


def test_options_repr_hides_secrets() -> None:
    opts = resolve(
        "proxmox://root@pam@pve",
        profile=None,
        explicit={"password": "hunter2", "token": "t0k3n-xyz"},
        backend_options={"api_secret": "zzz-secret"},
    )
    text = repr(opts)
    assert "hunter2" not in text and "t0k3n-xyz" not in text and "zzz-secret" not in text


def test_unknown_kind_lists_the_known() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"known kinds: .*sim"):
        hvkit.connect("nosuch://x")


def test_register_third_party_backend() -> None:
    hvkit.register("mine", "hvkit.backends.sim:SimBackend", description="a third-party driver")
    try:
        with hvkit.connect("mine://third") as hv:
            assert hv.hosts.list()
        assert "mine" in _registry.known()
    finally:
        _registry._registered.pop("mine", None)


def test_entry_point_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "hvkit_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hvkit-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hvkit.backends]\nextra = hvkit.backends.sim:SimBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    try:
        assert "extra" in _registry.known()
        with hvkit.connect("extra://ep") as hv:
            assert hv.kind == "sim"
    finally:
        _registry._registered.pop("extra", None)
    assert sys.path  # the path is restored by monkeypatch


def test_secrets_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Pa55-w0rd-very-secret"
    with hvkit.connect("sim://secrets", password=secret) as hv:
        assert secret not in repr(hv) and secret not in repr(hv.backend.options)
        assert isinstance(hv.backend, SimBackend)
        hv.backend.faults.fail("start_vm", error=errors.BackendError(f"login as root/{secret} refused"))
        vm = hv.vms.create(hvkit.VMSpec(name="s1"))
        with pytest.raises(errors.BackendError) as info:
            hv.vms.start(vm)
        assert secret not in str(info.value) and "***" in str(info.value)
        hv.vms.delete(vm)
    assert secret not in caplog.text


@pytest.mark.parametrize("kind", ["hyperv", "vbox", "xen", "esxi", "kvm", "proxmox", "vcenter", "sim"])
def test_every_named_vendor_has_a_backend(kind: str) -> None:
    assert kind in _registry.known()


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"no hvkit backend for URLs of kind 'nosuch'.*known kinds"):
        hvkit.connect("nosuch://host")
