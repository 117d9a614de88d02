"""``hvkit migrate``: dry run, a real run with progress, bad input, exit codes."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.cli._common import EXIT_PLAN_PROBLEMS, ProgressBars, report_error
from hvkit.cli.migrate import register
from hvkit.errors import HvkitError
from hvkit.hypervisor import Hypervisor

from .conftest import inventory, make_source, sim_url


@pytest.fixture
def urls(names: tuple[str, str], tmp_path: Path) -> tuple[str, str]:
    """The CLI keeps sim state on disk; these URLs name a state directory of the test's own."""
    return sim_url(names[0], state_dir=tmp_path / "state"), sim_url(names[1], state_dir=tmp_path / "state")


@pytest.fixture
def cli_pair(urls: tuple[str, str]) -> Iterator[tuple[Hypervisor, Hypervisor]]:
    with hvkit.connect(urls[0]) as src, hvkit.connect(urls[1]) as dst:
        yield src, dst


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hvkit")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def call(argv: list[str]) -> tuple[int, str, str]:
    """Run the command as ``hvkit`` does: an error goes through the CLI's one error path."""
    args = parse(argv)
    out, err = io.StringIO(), io.StringIO()
    try:
        code = args.func(args, out, err)
    except HvkitError as exc:
        code = report_error(exc, err)
    return code, out.getvalue(), err.getvalue()


def test_dry_run_prints_the_plan_and_changes_nothing(
    cli_pair: tuple[Hypervisor, Hypervisor], urls: tuple[str, str], tmp_path: Path
) -> None:
    src, dst = cli_pair
    make_source(src, tmp_path)
    before = inventory(dst)
    code, out, _ = call(["migrate", "--from", urls[0], "--to", urls[1], "web-1",
                         "--network-map", "lan=default", "--dry-run"])  # fmt: skip
    assert code == 0
    assert "Steps:" in out and "'lan' -> 'default'" in out and "dry run: nothing was changed" in out
    assert inventory(dst) == before


def test_run_with_progress_and_problems(
    cli_pair: tuple[Hypervisor, Hypervisor], urls: tuple[str, str], tmp_path: Path
) -> None:
    src, dst = cli_pair
    make_source(src, tmp_path)
    base = ["migrate", "--from", urls[0], "--to", urls[1]]
    code, out, err = call([*base, "web-1", "--network-map", "lan=nowhere"])
    assert code == EXIT_PLAN_PROBLEMS != 2 and "not have" in out and "nothing was changed" in err
    code, out, err = call([*base, "web-1", "--network-map", "lan", "--dry-run"])
    assert code == 2 and "SOURCE=TARGET" in err  # invalid input, as everywhere in the hvkit command
    code, out, err = call([*base, "web-1", "--start", "--journal-dir", str(tmp_path / "j")])
    assert code == 0, err
    assert "verified" in out and "running" in out and "hvkit3:" in out  # the default checksum
    assert "disk0" in err and "verify" in err and "100%" in err  # a progress line per disk and phase
    assert [v.name for v in dst.vms.list()] == ["web-1"]


def test_bars_redraw_in_place_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bars = ProgressBars(out, interval=0)
    bars.update("disk0", "import", 50, 100)
    bars.update("disk1", "import", 10, 100)
    bars.update("disk0", "import", 100, 100)
    bars.close()
    text = out.getvalue()
    assert "\x1b[2F" in text and "disk0" in text and "100%" in text and "#" * 30 in text


def test_checksum_choice(cli_pair: tuple[Hypervisor, Hypervisor], urls: tuple[str, str], tmp_path: Path) -> None:
    src, _ = cli_pair
    make_source(src, tmp_path, disks=((4, "default", "qcow2"),))
    base = ["migrate", "--from", urls[0], "--to", urls[1], "web-1", "--no-progress"]
    with pytest.raises(SystemExit):  # argparse refuses an unknown algorithm before anything runs
        parse([*base, "--checksum", "md5"])
    code, out, err = call([*base, "--checksum", "hvkit-disk-v2", "--journal-dir", str(tmp_path / "j")])
    assert code == 0, err
    assert "verified" in out and "hvkit2:" in out and "hvkit3:" not in out
