"""The stand-in VBoxManage itself: concurrent processes, option tables per version, OVA export/import,
outputs the backend does not read."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
from pathlib import Path

import pytest

from hvkit.backends.vbox import _parse
from hvkit.testing.vbox_sim import VBoxSim, run


def vbm(sim: VBoxSim, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(sim.vboxmanage), *args], capture_output=True, text=True, timeout=120, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def sim(tmp_path: Path) -> VBoxSim:
    return VBoxSim(tmp_path / "vbox", version="7.0")


def test_concurrent_processes_see_each_other(sim: VBoxSim) -> None:
    """Eight VBoxManage processes at once: the state lock orders them; nothing is lost."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        procs = list(pool.map(lambda i: vbm(sim, "createvm", "--name", f"vm{i}", "--register"), range(8)))
    assert all(p.returncode == 0 for p in procs)
    names = sorted(name for name, _ in _parse.list_vms(vbm(sim, "list", "vms").stdout))
    assert names == [f"vm{i}" for i in range(8)]
    assert "already exists" in vbm(sim, "createvm", "--name", "vm0", "--register", ok=False).stderr


@pytest.mark.parametrize(
    ("version", "args", "status"),
    [
        ("6.1", ["controlvm", "x", "reboot"], 2),  # 7.0 added the keyword
        ("7.0", ["modifyvm", "x", "--os-type", "Debian_64"], 0),
        ("6.1", ["modifyvm", "x", "--nic-type1", "virtio"], 2),  # 7.0's spelling
        ("7.0", ["modifyvm", "x", "--nictype1", "virtio"], 0),  # 6.1's spelling: a legacy alias in 7.0
        ("6.1", ["unregistervm", "x", "--delete-all"], 2),
        ("7.0", ["createvm", "--name", "y", "--os-type", "Debian_64"], 2),  # createvm kept --ostype
    ],
)
def test_option_tables_per_version(tmp_path: Path, version: str, args: list[str], status: int) -> None:
    sim = VBoxSim(tmp_path / "v", version=version)
    assert run(["createvm", "--name", "x", "--register"], sim.root)[0] == 0
    code, _, err = run(args, sim.root)
    assert code == status, err
    if status == 2:  # the usage, then VirtualBox's own error line
        assert err.startswith("Usage:\n\n") and err.splitlines()[-1].startswith("VBoxManage: error: ")


def test_ova_export_import_keeps_the_disk(sim: VBoxSim, tmp_path: Path) -> None:
    vbm(sim, "createvm", "--name", "src", "--register")
    vbm(sim, "modifyvm", "src", "--memory", "300", "--cpus", "2")
    vbm(sim, "storagectl", "src", "--name", "SATA", "--add", "sata")
    disk = tmp_path / "d.vdi"
    vbm(sim, "createmedium", "disk", "--filename", str(disk), "--size", "4", "--format", "VDI")
    raw = tmp_path / "content.raw"
    raw.write_bytes(b"ova-marker" + bytes(4 * 1024 * 1024 - 10))
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "vdi", str(raw), str(disk)], check=True)
    vbm(sim, "storageattach", "src", "--storagectl", "SATA", "--port", "0", "--device", "0", "--type", "hdd",
        "--medium", str(disk))  # fmt: skip
    ova = tmp_path / "src.ova"
    vbm(sim, "export", "src", "--output", str(ova))
    vbm(sim, "import", str(ova), "--vmname", "copy")
    values = _parse.machinereadable(vbm(sim, "showvminfo", "copy", "--machinereadable").stdout)
    assert (values["memory"], values["cpus"]) == ("300", "2")
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vdi", "-O", "raw", values["SATA-0-0"], str(back)], check=True)
    assert back.read_bytes() == raw.read_bytes()


def test_running_paused_and_saved_states(sim: VBoxSim) -> None:
    vbm(sim, "createvm", "--name", "p", "--register")
    assert "does not have any snapshots" in vbm(sim, "snapshot", "p", "list", ok=False).stdout
    vbm(sim, "startvm", "p", "--type", "headless")
    vbm(sim, "controlvm", "p", "pause")
    assert _parse.list_vms(vbm(sim, "list", "runningvms").stdout)[0][0] == "p"  # a paused VM is listed
    locked = vbm(sim, "startvm", "p", ok=False)
    assert "is already locked by a session" in locked.stderr and locked.returncode == 1
    vbm(sim, "controlvm", "p", "savestate")
    values = _parse.machinereadable(vbm(sim, "showvminfo", "p", "--machinereadable").stdout)
    assert values["VMState"] == "saved" and Path(values["VMStateFile"]).is_file()
    assert len(values["VMStateChangeTime"]) == 29  # RTTimeSpecToString cut to 29 characters, no 'Z'
    assert "not currently running" in vbm(sim, "controlvm", "p", "poweroff", ok=False).stderr


def test_showmediuminfo_and_list_hdds_agree(sim: VBoxSim, tmp_path: Path) -> None:
    out = vbm(sim, "createmedium", "disk", "--filename", str(tmp_path / "m"), "--sizebyte", str(3 << 20),
              "--format", "VMDK").stdout  # fmt: skip
    medium = out.rsplit("UUID: ", 1)[1].strip()
    info = _parse.key_value_blocks(vbm(sim, "showmediuminfo", "disk", medium).stdout, "UUID")[0]
    listed = _parse.key_value_blocks(vbm(sim, "list", "hdds").stdout, "UUID")[0]
    assert info["Location"] == listed["Location"] == str(tmp_path / "m.vmdk")
    assert info["Capacity"] == listed["Capacity"] == "3 MBytes"
    assert info["Format variant"] == "dynamic default"
    image = json.loads(subprocess.run(["qemu-img", "info", "--output=json", info["Location"]], capture_output=True,
                                      check=True, text=True).stdout)  # fmt: skip
    assert image["format"] == "vmdk" and image["virtual-size"] == 3 << 20


@pytest.mark.parametrize("version", ["7.0", "6.1"])
def test_natnetwork_add_remove_as_virtualbox(tmp_path: Path, version: str) -> None:
    """``natnetwork add`` shows in ``list natnets`` (the backend's networks); errors as VBoxManage gives them."""
    sim = VBoxSim(tmp_path / "vbox", version=version)
    add = ("natnetwork", "add", "--netname", "default", "--network", "10.0.9.0/24", "--enable")
    assert vbm(sim, *add).stdout == ""
    nets = {b["NetworkName"]: b for b in _parse.key_value_blocks(vbm(sim, "list", "natnets").stdout, "NetworkName")}
    assert nets["default"]["Network"] == "10.0.9.0/24" and nets["default"]["IP"] == "10.0.9.1"
    again = vbm(sim, *add, ok=False)
    assert (again.returncode, again.stderr) == (1, "VBoxManage: error: NATNetwork server already exists\n")
    no_cidr = vbm(sim, "natnetwork", "add", "--netname", "x", ok=False)
    assert no_cidr.returncode == 2 and no_cidr.stderr.endswith("error: You need to specify the --network option\n")
    extra = vbm(sim, "natnetwork", "remove", "--netname", "default", "--enable", ok=False)  # remove: 4 options only
    assert extra.returncode == 2 and extra.stderr.endswith("error: Unknown option: --enable\n")
    new_spelling = vbm(sim, "natnetwork", "add", "--netname", "y", "--ipv4-prefix", "10.0.8.0/24", ok=version == "7.0")
    assert new_spelling.returncode == (0 if version == "7.0" else 2)
    listed = vbm(sim, "natnetwork", "list", "def*", ok=version == "7.0")
    if version == "7.0":
        assert "Name:         default\n" in listed.stdout and listed.stdout.endswith("1 network found\n")
    else:  # 6.1 has no 'natnetwork list'
        assert listed.returncode == 2 and "Invalid parameter 'list'" in listed.stderr
    vbm(sim, "natnetwork", "remove", "--netname", "default")
    gone = vbm(sim, "natnetwork", "remove", "--netname", "default", ok=False)
    assert (gone.returncode, gone.stderr) == (1, "VBoxManage: error: NATNetwork server does not exist\n")
