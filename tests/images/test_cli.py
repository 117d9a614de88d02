"""``hvkit image`` import / list / verify / delete on sim, and its exit codes on bad input."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import hvkit
from hvkit.cli import main

from .conftest import MIB, Served, disk_content, qcow2_of, sha256


def test_cli_round_trip(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sim://cli-{uuid.uuid4().hex[:6]}?state_dir={tmp_path / 'sim'}"
    catalog = str(tmp_path / "images.json")
    data = qcow2_of(disk_content(2 * MIB, 31), tmp_path)
    source = served.put("cli.qcow2", data)
    base = ["--url", url]
    assert main(["image", "import", "cli-img", source, "--sha256", sha256(data), "--catalog", catalog, *base]) == 0
    assert "cli-img" in capsys.readouterr().out
    assert main(["image", "list", "--json", "--catalog", catalog, *base]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in listed] == ["cli-img"] and listed[0]["digest"] == f"sha256:{sha256(data)}"
    assert main(["image", "verify", "cli-img", "--catalog", catalog, *base]) == 0
    assert "is intact" in capsys.readouterr().out
    assert main(["image", "import", "bad", source, "--sha256", "0" * 64, "--catalog", catalog, *base]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["image", "import", "bad", source, "--sha256", "xyz", "--catalog", catalog, *base]) == 2
    with hvkit.connect(url, image_catalog=catalog) as hv:  # a VM with a linked disk over the image
        vm = hv.vms.create(hvkit.VMSpec(name="cli-vm", disks=[hvkit.DiskSpec(image="cli-img", linked=True)]))
        assert main(["image", "delete", "cli-img", "--catalog", catalog, *base]) != 0
        assert "'cli-img' is the base of linked disks of VMs cli-vm" in capsys.readouterr().err
        hv.vms.delete(vm)
    assert main(["image", "delete", "cli-img", "--catalog", catalog, *base]) == 0
    assert main(["image", "verify", "cli-img", "--catalog", catalog, *base]) == 3
