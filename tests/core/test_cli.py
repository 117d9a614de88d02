"""The hvkit command: listings, JSON, lifecycle, one-line errors with exit codes, the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvkit.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_vm_lifecycle_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--url", "sim://cli"]
    code, out, _ = run(
        capsys,
        *url,
        "vm",
        "create",
        "web-1",
        "--cpus",
        "2",
        "--memory",
        "512",
        "--disk",
        "0.01:default:qcow2",
        "--nic",
        "default:52:54:00:aa:bb:cc",
    )
    assert code == 0 and "web-1" in out
    code, out, _ = run(capsys, *url, "--json", "vm", "list")
    (vm,) = json.loads(out)
    assert (vm["name"], vm["cpus"], vm["power_state"], vm["nics"][0]["mac"]) == (
        "web-1",
        2,
        "stopped",
        "52:54:00:aa:bb:cc",
    )
    assert run(capsys, *url, "vm", "start", "web-1")[0] == 0
    assert run(capsys, *url, "snapshot", "create", "web-1", "before")[0] == 0
    code, out, _ = run(capsys, "snapshot", "list", "web-1", "--json", *url)
    assert [s["name"] for s in json.loads(out)] == ["before"]
    assert run(capsys, *url, "vm", "stop", "web-1", "--force")[0] == 0
    assert run(capsys, *url, "snapshot", "revert", "web-1", "before")[0] == 0
    assert run(capsys, *url, "snapshot", "delete", "web-1", "before")[0] == 0
    assert run(capsys, *url, "vm", "clone", "web-1", "web-2", "--linked")[0] == 0
    code, _, err = run(capsys, *url, "vm", "delete", "web-1")
    assert code == 4 and "linked clones" in err  # its disk backs web-2: nothing is lost
    assert run(capsys, *url, "vm", "reconfigure", "web-2", "--cpus", "4")[0] == 0
    code, out, _ = run(capsys, *url, "vm", "show", "web-2")
    assert code == 0 and "cpus           4" in out
    for name in ("web-2", "web-1"):
        assert run(capsys, *url, "vm", "delete", name, "--force")[0] == 0
    code, out, _ = run(capsys, *url, "--json", "vm", "list")
    assert json.loads(out) == []


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["vm", "start", "nope"], 3, "no VM 'nope'"),
        (["vm", "create", "bad/name"], 2, "'/'"),
        (["vm", "create", "x", "--disk", "ten"], 2, "must be a number"),
        (["vm", "create", "x", "--nic", "default:zz"], 2, "NETWORK:MAC"),
        (["vm", "reconfigure", "x"], 2, "needs cpus"),
        (["--url", "nosuch://x", "vm", "list"], 2, "no hvkit backend"),
        (["--url", "kvm://h:999999/x", "vm", "list"], 2, "invalid port"),
    ],
)
def test_errors_are_one_line_with_exit_codes(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, _out, err = run(capsys, *argv)
    assert got == code
    assert err.startswith("hvkit: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_state_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--url", "sim://cli-state"]
    run(capsys, *url, "vm", "create", "s1")
    got, _, err = run(capsys, *url, "vm", "stop", "s1", "--force")
    assert got == 4 and "stopped" in err


def test_listings(capsys: pytest.CaptureFixture[str]) -> None:
    for noun in ("host", "pool", "net"):
        code, out, _ = run(capsys, "--url", "sim://cli-list", noun, "list")
        assert code == 0 and out.startswith("NAME")
        code, out, _ = run(capsys, "--url", "sim://cli-list", "--json", noun, "list")
        assert code == 0 and isinstance(json.loads(out), list)
    code, out, _ = run(capsys, "backends")
    assert code == 0 and "| `vm.create`" in out and "sim" in out
    code, out, _ = run(capsys, "backends", "--json")
    assert any(b["kind"] == "sim" and b["installed"] for b in json.loads(out))


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from hvkit import errors

    with pytest.raises(errors.NotFound):
        main(["--debug", "--url", "sim://cli-debug", "vm", "start", "nope"])


def test_demo_runs_as_a_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hvkit", "demo", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "web-3" in proc.stdout and "before-upgrade" in proc.stdout and "running" in proc.stdout
    again = subprocess.run(
        [sys.executable, "-m", "hvkit", "--url", "sim://demo", "--json", "vm", "list"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HVKIT_SIM_STATE_DIR": str(tmp_path)},
        timeout=60,
    )
    assert sorted(v["name"] for v in json.loads(again.stdout)) == ["db-1", "web-1", "web-2", "web-3"]
