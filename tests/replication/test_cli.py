"""``hvkit replicate``: create, sync, status, failover, failback on sim hypervisors kept in state directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hvkit
from hvkit.cli import main

from .conftest import forget, make_source, random_writes, write_blocks


def test_replicate_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src_url = f"sim://clisrc?state_dir={tmp_path / 'src'}"
    dst_url = f"sim://clidst?state_dir={tmp_path / 'dst'}"
    with hvkit.connect(src_url) as src:
        make_source(src, tmp_path, running=False)
    try:
        assert main(["replicate", "create", "web-1", "--from", src_url, "--to", dst_url, "--name", "web"]) == 0
        assert "replica of 'web-1' made" in capsys.readouterr().out
        with hvkit.connect(src_url) as src:
            disk = src.vms.get("web-1").disks[0]
            write_blocks(src, disk.volume or "", random_writes(disk.size_bytes, 2, 65536, 5), tmp_path)
        assert main(["--json", "replicate", "sync", "web", "--from", src_url, "--to", dst_url]) == 0
        synced = json.loads(capsys.readouterr().out)
        assert 0 < synced["disks"][0]["data_bytes"] <= 4 * 65536 and synced["point"] == 2
        assert main(["replicate", "status", "web"]) == 0
        assert "web: replicating" in capsys.readouterr().out
        assert main(["replicate", "failover", "web", "--to", dst_url]) == 0
        assert "is running" in capsys.readouterr().out
        assert main(["replicate", "sync", "web", "--from", src_url, "--to", dst_url]) != 0  # failed over
        assert "fail back first" in capsys.readouterr().err
        assert main(["replicate", "failback", "web", "--from", src_url, "--to", dst_url]) == 0
        assert "sync done" in capsys.readouterr().out
        assert main(["replicate", "sync", "web", "--to", dst_url]) == 2  # --from missing: invalid input
        assert main(["replicate", "remove", "web", "--from", src_url, "--to", dst_url]) == 0
        assert main(["replicate", "status", "web"]) != 0
    finally:
        forget("clisrc", "clidst")
