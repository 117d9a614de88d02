"""The Hyper-V backend through pywinrm and the WinRM endpoint: quoting, errors, auth and encryption set-up."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import errors
from hvkit.backends.hyperv._errors import HyperVError, parse_stderr
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, NicSpec, PowerState, VMSpec
from hvkit.testing.hyperv_sim import HyperVHost

DATA = Path(__file__).parent / "data"
TRICKY = 'it\'s "$(Get-Date)"; `whoami` $env:USERNAME ü 漢字 😀'


def _spec(name: str, **kw: object) -> VMSpec:
    fields: dict[str, object] = {
        "name": name,
        "cpus": 1,
        "memory_mib": 128,
        "disks": [DiskSpec(size_gib=0.01, pool="default")],
        "nics": [NicSpec(network="External")],
    }
    fields.update(kw)
    return VMSpec(**fields)  # type: ignore[arg-type]


def test_names_and_notes_round_trip(hv: Hypervisor, host: HyperVHost) -> None:
    notes = "line one\nline two\r\n\ttab $(x) @' '@ \" ' ` end"
    vm = hv.vms.create(_spec(TRICKY, notes=notes))
    assert vm.name == TRICKY and vm.notes == notes
    again = hv.vms.get(TRICKY)
    assert again.id == vm.id and again.name == TRICKY and again.notes == notes
    snap = hv.snapshots.create(vm, "snap 'one' \"$x\" `y` ✓")
    assert [s.name for s in hv.snapshots.list(vm)] == ["snap 'one' \"$x\" `y` ✓"]
    assert snap.parent is None
    clone = hv.vms.clone(vm, TRICKY + " copy")
    assert clone.name == TRICKY + " copy"
    # the host really holds the names as given
    assert {v.name for v in host.state.vms.values()} >= {TRICKY, TRICKY + " copy"}


def test_one_shell_per_connection_and_one_command_per_operation(host: HyperVHost) -> None:
    with hvkit.connect(host.url, password=host.password, ca_file=host.ca_file) as conn:
        host.endpoint.reset_counts()
        before = conn.backend.round_trips  # type: ignore[attr-defined]
        conn.networks.list()
        conn.pools.list()
        actions = list(host.endpoint.shells.actions)
        assert "create" not in actions  # the shell opened at connect is reused
        assert actions.count("command") == 2 == conn.backend.round_trips - before  # type: ignore[attr-defined]
        assert actions.count("signal") == 2 and actions.count("receive") == 2
    assert host.endpoint.shells.actions[-1] == "delete"  # closed with the connection


def test_long_scripts_go_over_stdin(hv: Hypervisor) -> None:
    long_notes = "x" * 20000 + " ü"  # the script and parameters are far beyond cmd.exe's 8,191 characters
    vm = hv.vms.create(_spec("hvk-long", notes=long_notes))
    assert hv.vms.get(vm).notes == long_notes


def test_encoded_command_would_hit_the_command_line_limit(host: HyperVHost) -> None:
    """What pywinrm's run_ps does (-EncodedCommand) fails for a long script; hvkit never does that."""
    import winrm

    session = winrm.Session(
        host.endpoint.endpoint,
        auth=(host.user, host.password),
        transport="ntlm",
        server_cert_validation="validate",
        ca_trust_path=host.ca_file,
    )
    result = session.run_ps("Write-Output '" + "y" * 9000 + "'")
    assert result.status_code == 1 and b"too long" in result.std_err


def test_errors_map_to_hvkit_with_the_record_as_cause(hv: Hypervisor) -> None:
    with pytest.raises(errors.NotFound) as info:
        hv.vms.get("hvkit-no-such-vm")
    cause = info.value.__cause__
    assert isinstance(cause, HyperVError)
    assert cause.record.category == "ObjectNotFound" and cause.record.error_id == "hvkit.VMNotFound"
    vm = hv.vms.create(_spec("hvk-err"))
    with pytest.raises(errors.AlreadyExists):
        hv.vms.create(_spec("hvk-err"))
    # a switch that vanishes between the core's check and the create: the host's error, nothing left behind
    spec = _spec("hvk-err2", nics=[NicSpec(network="no-such-switch")])
    with pytest.raises(errors.NotFound) as sw:
        hv.backend.create_vm(spec)
    assert isinstance(sw.value.__cause__, HyperVError)
    assert sw.value.__cause__.record.error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVMSwitch"
    assert "hvk-err2" not in {v.name for v in hv.vms.list()}
    vm = hv.vms.start(vm)
    with pytest.raises(errors.InvalidState) as state:  # the host refuses a processor change while running
        hv.backend.reconfigure_vm(vm, 2, None)
    assert state.value.__cause__.record.error_id.startswith("InvalidState,")  # type: ignore[union-attr]
    with pytest.raises(errors.InvalidSpec):
        hv.vms.create(
            _spec("hvk-gen2-ide", firmware="uefi", disks=[DiskSpec(size_gib=0.01, pool="default", bus="ide")])
        )
    hv.vms.stop(vm, force=True)


def test_a_failed_create_removes_only_what_it_made(hv: Hypervisor, host: HyperVHost) -> None:
    files_before = sorted(p.name for p in (host.root / "C" / "Hyper-V" / "Virtual Hard Disks").iterdir())
    with pytest.raises(errors.HvkitError):  # the second disk names a file that is not a VHD: Add-VMHardDiskDrive fails
        bogus = host.root / "C" / "Hyper-V" / "Virtual Hard Disks" / "not-a-disk.vhdx"
        bogus.write_bytes(b"nope")
        try:
            disks = [
                DiskSpec(size_gib=0.01, pool="default"),
                DiskSpec(volume=r"C:\Hyper-V\Virtual Hard Disks\not-a-disk.vhdx"),
            ]
            hv.vms.create(_spec("hvk-undo", disks=disks))
        finally:
            assert bogus.exists()  # not the create's to remove
            bogus.unlink()
    assert "hvk-undo" not in {v.name for v in hv.vms.list()}
    assert sorted(p.name for p in (host.root / "C" / "Hyper-V" / "Virtual Hard Disks").iterdir()) == files_before


def test_generation_2_secure_boot_and_ide(hv: Hypervisor, host: HyperVHost) -> None:
    uefi = hv.vms.create(_spec("hvk-uefi", firmware="uefi"))
    assert uefi.firmware.value == "uefi" and uefi.extra["generation"] == 2 and uefi.extra["secure_boot"] is True
    assert host.state.vms[uefi.id].secure_boot_template == "MicrosoftUEFICertificateAuthority"
    assert {d.bus.value for d in uefi.disks} == {"scsi"}  # type: ignore[union-attr]
    bios = hv.vms.create(_spec("hvk-bios"))
    assert bios.extra["generation"] == 1 and bios.disks[0].bus.value == "ide"  # type: ignore[union-attr]


def test_power_states_console_ips_and_metrics(hv: Hypervisor) -> None:
    vm = hv.vms.start(hv.vms.create(_spec("hvk-power")))
    assert hv.vms.guest_ips(vm)  # KVP reports addresses once the guest runs
    console = hv.vms.console(vm)
    assert console.port == 2179 and console.protocol == "rdp" and vm.id in (console.url or "")
    (metrics,) = hv.vms.metrics([vm])
    assert metrics.memory_used_mib == 128
    assert hv.vms.suspend(vm).power_state is PowerState.SUSPENDED
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
    hv.vms.stop(vm, force=True)


def test_storage_move_and_volumes(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("hvk-move"))
    moved = hv.vms.migrate(vm, pool="fast")
    assert {d.pool for d in moved.disks} == {"fast"}
    assert all((d.path or "").startswith("D:\\VMs\\") for d in moved.disks)
    vol = hv.volumes.create("fast", "hvk-data", 0.01)
    assert vol.id == "D:\\VMs\\hvk-data.vhdx" and vol.pool == "fast"
    assert hv.volumes.get(vol.id).capacity_bytes == vol.capacity_bytes
    hv.volumes.delete(vol)
    with pytest.raises(errors.NotFound):
        hv.volumes.get(vol.id)


def test_clixml_stderr_samples_parse() -> None:
    records, _warnings, _ = parse_stderr((DATA / "stderr-clixml-error.pywinrm-test.bin").read_bytes())
    (record,) = records
    assert record.category == "ObjectNotFound" and record.error_id == "CommandNotFoundException"
    assert record.message.startswith("fake : The term 'fake' is not recognized") or "not recognized" in record.message
    assert parse_stderr((DATA / "stderr-clixml-progress-only.pywinrm-test.bin").read_bytes())[0] == []


# -- connection set-up ---------------------------------------------------------------------------------------
def test_wrong_password_is_an_authentication_error(host: HyperVHost) -> None:
    with pytest.raises(errors.AuthenticationError) as info:
        hvkit.connect(host.url, password="wrong", ca_file=host.ca_file)
    assert "wrong" not in str(info.value)


def test_certificate_checks_are_on(host: HyperVHost) -> None:
    with pytest.raises(errors.ConnectionError, match="ca_file"):
        hvkit.connect(host.url, password=host.password)
    with hvkit.connect(host.url, password=host.password, verify_tls=False) as conn:
        assert conn.hosts.list()


def test_plain_http_only_with_message_encryption() -> None:
    with HyperVHost(tls=False) as plain:
        assert plain.url.startswith("hyperv+http://")
        with hvkit.connect(plain.url, password=plain.password) as conn:
            vm = conn.vms.create(_spec("hvk-http"))
            assert conn.vms.get(vm).name == "hvk-http"
        with pytest.raises(errors.InvalidSpec, match="message_encryption"):
            hvkit.connect(plain.url + "?message_encryption=false", password=plain.password)
        import winrm
        from winrm.exceptions import InvalidCredentialsError

        unencrypted = winrm.protocol.Protocol(
            plain.endpoint.endpoint,
            transport="ntlm",
            username=plain.user,
            password=plain.password,
            message_encryption="never",
        )
        with pytest.raises(InvalidCredentialsError):  # AllowUnencrypted=false: the host refuses it
            unencrypted.open_shell()


def test_kerberos_and_credssp_set_up_errors(host: HyperVHost) -> None:
    with pytest.raises(errors.InvalidSpec, match="DNS name"):
        hvkit.connect(host.url + "?auth=kerberos", password=host.password)
    with pytest.raises(errors.InvalidSpec, match="auth="):
        hvkit.connect(host.url + "?auth=basic", password=host.password)
    import importlib.util

    if importlib.util.find_spec("requests_credssp") is None:
        with pytest.raises(errors.BackendError, match="pywinrm\\[credssp\\]"):
            hvkit.connect(host.url + "?auth=credssp", password=host.password)


def test_secrets_stay_out_of_logs_and_reprs(host: HyperVHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with hvkit.connect(host.url, password=host.password, ca_file=host.ca_file) as conn:
        conn.hosts.list()
        assert host.password not in repr(conn)
    text = caplog.text
    assert host.password not in text
    assert base64.b64encode(host.password.encode()).decode() not in text
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("urllib3").addHandler(handler)
    try:
        logging.getLogger("urllib3").debug("Authorization: Negotiate TlRMTVNTUAABAAAAB4IIog==")
    finally:
        logging.getLogger("urllib3").removeHandler(handler)
    assert "TlRMTVNTUAAB" not in stream.getvalue()


def test_cloud_init_seed_iso_as_dvd(hv: Hypervisor, host: HyperVHost) -> None:
    pycdlib = pytest.importorskip("pycdlib")
    from hvkit.models import CloudInit

    ci = CloudInit(hostname="web-01", username="ops", ssh_keys=("ssh-ed25519 AAAAC3Nza ops@example",))
    vm = hv.vms.create(_spec('hvk-ci "quoted"', cloud_init=ci))
    (dvd,) = vm.extra["dvds"]
    assert dvd.endswith("-cidata.iso") and dvd.startswith("C:\\Hyper-V\\Virtual Hard Disks\\")
    iso = pycdlib.PyCdlib()
    iso.open(str(host.state.local(dvd)))
    try:
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"cidata"
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, joliet_path="/user-data")
    finally:
        iso.close()
    user_data = out.getvalue().decode()
    assert user_data.startswith("#cloud-config") and 'hostname: "web-01"' in user_data and "ops@example" in user_data
    hv.vms.delete(vm)
    assert not host.state.local(dvd).exists()  # the seed goes with the VM


def test_channel_binding_is_checked(host: HyperVHost) -> None:
    """Over HTTPS pywinrm binds NTLM to the certificate; a strict endpoint demands it, a wrong one fails."""
    import winrm

    from hvkit.testing.winrm_sim import Process, WinRMEndpoint

    def echo(user: str, words: list[str], stdin: bytes) -> Process:
        return Process(stdout=b"ok")

    with WinRMEndpoint(echo, users={"hvkit-cbt": "Cbt-pa55"}, cbt="strict") as strict:
        p = winrm.protocol.Protocol(
            strict.endpoint, transport="ntlm", username="hvkit-cbt", password="Cbt-pa55", ca_trust_path=strict.ca_file
        )
        p.close_shell(p.open_shell())  # pywinrm sends the binding: accepted
        strict._cbt_hash = b"\0" * 32  # as if the client saw another certificate (a TLS interceptor)
        q = winrm.protocol.Protocol(
            strict.endpoint, transport="ntlm", username="hvkit-cbt", password="Cbt-pa55", ca_trust_path=strict.ca_file
        )
        with pytest.raises(winrm.exceptions.InvalidCredentialsError):
            q.open_shell()


def test_graceful_stop_times_out(hv: Hypervisor, host: HyperVHost) -> None:
    vm = hv.vms.start(hv.vms.create(_spec("hvk-slow")))
    host.state.vms[vm.id].shutdown_seconds = 4.0  # the guest takes its time
    with pytest.raises(errors.Timeout):
        hv.backend.stop_vm(vm, False, 1.0)
    # the shutdown request was sent: the guest still goes down on its own time, whatever the client does
    with host.state.lock:
        host.state.vms[vm.id].shutdown_seconds = 0.0
    assert hv.vms.get(vm).power_state is PowerState.STOPPED


def test_host_metrics(hv: Hypervisor) -> None:
    (metrics,) = hv.hosts.metrics()
    assert metrics.host == hv.hosts.list()[0].id
    assert 0.0 <= (metrics.cpu_usage or 0) <= 1.0 and (metrics.memory_used_mib or 0) > 0


@pytest.mark.parametrize(
    ("state", "name", "expected"),
    [
        (2, "Running", PowerState.RUNNING),
        (3, "Off", PowerState.STOPPED),
        (9, "Paused", PowerState.PAUSED),
        (6, "Saved", PowerState.SUSPENDED),
        (32783, "RunningCritical", PowerState.RUNNING),  # Windows Server 2016's number for RunningCritical
        (32783, "Hibernated", PowerState.SUSPENDED),  # newer builds' number for Hibernated
        (32786, None, PowerState.UNKNOWN),  # a number alone above 32782 is ambiguous
    ],
)
def test_vm_state_read_by_name_first(state: int, name: str | None, expected: PowerState) -> None:
    from hvkit.backends.hyperv._convert import power_state

    assert power_state({"State": state, "StateName": name}) is expected


def test_checkpoints_keep_disk_states_as_hyper_v_does(hv: Hypervisor, host: HyperVHost) -> None:
    """Checkpoints move the disks onto .avhdx children; a restore brings the content back; delete takes the chain."""
    import json as _json
    import subprocess

    vm = hv.vms.create(_spec("hvk-chain"))
    base = vm.disks[0].path or ""
    snap = hv.snapshots.create(vm, "before")
    leaf = hv.vms.get(vm).disks[0].path or ""
    assert leaf.endswith(".avhdx") and "hvk-chain-disk0_" in leaf
    local = host.state.local(leaf)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 64k", str(local)], check=True, capture_output=True)
    with pytest.raises(errors.InvalidState):  # the base file is read by the VM: not deletable
        hv.volumes.delete(base)
    hv.snapshots.revert(snap)
    now = host.state.local(hv.vms.get(vm).disks[0].path or "")
    assert not local.exists()  # the discarded state is gone
    info = _json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(now)], check=True, capture_output=True, text=True
        ).stdout
    )
    assert info["backing-filename"].endswith("hvk-chain-disk0.vhdx")
    read = subprocess.run(["qemu-io", "-c", "read -P 0 0 64k", str(now)], capture_output=True, text=True)
    assert "Pattern verification failed" not in read.stdout  # the write after the checkpoint is undone
    files = sorted(p.name for p in now.parent.iterdir() if p.name.startswith("hvk-chain"))
    hv.vms.delete(vm)
    assert not [p for p in now.parent.iterdir() if p.name.startswith("hvk-chain")], files


@pytest.fixture
def two_hosts() -> Iterator[tuple[HyperVHost, HyperVHost]]:
    """HV01 and HV02, each reachable from the other by name for Move-VM."""
    with HyperVHost(name="HV02") as dest, HyperVHost(name="HV01", peers=(dest,)) as src:
        yield src, dest


def test_live_migration_needs_delegation_then_moves_the_vm(two_hosts: tuple[HyperVHost, HyperVHost]) -> None:
    src, dest = two_hosts
    url = f"{src.url}?migration_hosts=HV02"
    with hvkit.connect(url, password=src.password, ca_file=src.ca_file, timeout=20) as hv:
        assert [h.name for h in hv.hosts.list()] == ["HV01", "HV02"]
        vm = hv.vms.start(hv.vms.create(_spec("hvk-live")))
        old_path = vm.disks[0].path or ""
        # NTLM session, CredSSP migration auth (the default): the source cannot reach HV02 as the user
        with pytest.raises(errors.BackendError, match="VirtualMachineMigrationAuthenticationType Kerberos") as info:
            hv.vms.migrate(vm, host="HV02")
        assert isinstance(info.value.__cause__, HyperVError)
        assert "0x8009030E" in info.value.__cause__.record.message
        assert info.value.__cause__.record.activity == "Move-VM"
        assert vm.id in src.state.vms and not dest.state.vms  # nothing moved
        with pytest.raises(errors.NotFound, match="HV03"):
            hv.vms.migrate(vm, host="HV03")
        src.set_migration(auth="Kerberos")  # delegation configured
        moved = hv.vms.migrate(vm, host="HV02")
        assert moved.host == "HV02" and moved.power_state is PowerState.RUNNING
        new_path = moved.disks[0].path or ""
        assert new_path.startswith("C:\\Hyper-V\\Virtual Hard Disks\\")
        assert vm.id not in src.state.vms and not src.state.local(old_path).exists()
        assert dest.state.local(new_path).is_file()
        with pytest.raises(errors.NotFound):  # HV01 no longer has it
            hv.vms.get(vm.id)
    with hvkit.connect(dest.url, password=dest.password, ca_file=dest.ca_file, timeout=20) as there:
        again = there.vms.get(vm.id)
        assert again.host == "HV02" and again.power_state is PowerState.RUNNING
        assert [d.path for d in again.disks] == [new_path]
        there.vms.delete(again, force=True)


def test_live_migration_refused_when_the_destination_takes_none(two_hosts: tuple[HyperVHost, HyperVHost]) -> None:
    src, dest = two_hosts
    src.set_migration(auth="Kerberos")
    dest.set_migration(auth="Kerberos", enabled=False)
    with hvkit.connect(f"{src.url}?migration_hosts=HV02", password=src.password, ca_file=src.ca_file) as hv:
        vm = hv.vms.create(_spec("hvk-nomig"))
        with pytest.raises(errors.InvalidState, match="not configured to accept migrations"):
            hv.vms.migrate(vm, host="HV02")
        assert hv.vms.get(vm.id).host == "HV01"
        hv.vms.delete(vm)


def _pattern(host: HyperVHost, path: str, byte: int, offset: int = 0, write: bool = False) -> bool:
    """Write ``byte`` into 64 KiB at ``offset`` of the disk file, or say whether it reads back so."""
    import subprocess

    op = "write" if write else "read"
    done = subprocess.run(
        ["qemu-io", *([] if write else ["-r"]), "-c", f"{op} -P {byte:#x} {offset} 64k", str(host.state.local(path))],
        capture_output=True,
        text=True,
        check=True,
    )
    return "Pattern verification failed" not in done.stdout


@pytest.mark.parametrize("case", ["revert-then-delete", "delete-keeps-later-writes", "older-of-two"])
def test_deleting_a_checkpoint_merges_its_disk_as_hyper_v_does(hv: Hypervisor, host: HyperVHost, case: str) -> None:
    """Remove-VMSnapshot merges the differencing file into its parent: no checkpoints left, the VM is on its base
    .vhdx again; the content is the VM's latest; every disk is a volume the host lists; a migration plan is clean."""
    from hvkit import migration

    name = f"hvk-merge-{case[:5]}"
    vm = hv.vms.create(_spec(name))
    base = vm.disks[0].path or ""
    try:
        _pattern(host, base, 0x11, write=True)
        first = hv.snapshots.create(vm, "first")
        _pattern(host, hv.vms.get(vm).disks[0].path or "", 0x22, write=True)
        if case == "revert-then-delete":
            hv.snapshots.revert(first)
            _pattern(host, hv.vms.get(vm).disks[0].path or "", 0x33, 65536, write=True)
            hv.snapshots.delete(first)
            expected = [(0x11, 0), (0x33, 65536)]
        elif case == "delete-keeps-later-writes":
            hv.snapshots.delete(first)
            expected = [(0x22, 0)]
        else:
            second = hv.snapshots.create(vm, "second")
            _pattern(host, hv.vms.get(vm).disks[0].path or "", 0x33, write=True)
            hv.snapshots.delete(first)
            expected = [(0x33, 0)]
        now = hv.vms.get(vm).disks[0].path or ""
        for byte, offset in expected:
            assert _pattern(host, now, byte, offset), (case, hex(byte))
        leftovers = sorted(p.name for p in host.state.local(now).parent.iterdir() if p.name.startswith(name))
        if case == "older-of-two":
            assert now.endswith(".avhdx") and host.state.vhd(now).parent == base  # the older layer merged away
            assert leftovers == sorted([base.rpartition("\\")[2], now.rpartition("\\")[2]])
            hv.snapshots.revert(second)  # the checkpoint that stays still holds its state
            assert _pattern(host, hv.vms.get(vm).disks[0].path or "", 0x22)
            hv.snapshots.delete(second)
            now = hv.vms.get(vm).disks[0].path or ""
        assert now == base, (case, now)
        assert [p.name for p in host.state.local(now).parent.iterdir() if p.name.startswith(name)] == [
            base.rpartition("\\")[2]
        ]
        listed = {v.id.lower() for v in hv.volumes.list()}
        assert all((d.volume or "").lower() in listed for d in hv.vms.get(vm).disks)
        with hvkit.connect(f"sim://{name}") as sim:
            plan = migration.plan(hv, vm.name, sim, network_map={"External": sim.networks.list()[0].name})
            assert not plan.problems, plan.problems
    finally:
        hv.vms.delete(vm)
