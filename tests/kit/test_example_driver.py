"""An out-of-tree driver (tests/kit/example_driver), installed with pip and found through the ``hvkit.backends``
entry point, passes the conformance suite's basic tier while importing only the public kit."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import _registry
from hvkit.testing.conformance import BasicTests

SOURCE = Path(__file__).parent / "example_driver"
PUBLIC = {"hvkit.driver", "hvkit.models", "hvkit.errors", "hvkit.capabilities"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install`` the example driver into a folder of its own, put it on sys.path, re-read entry points."""
    work = tmp_path_factory.mktemp("example-driver")
    shutil.copytree(SOURCE, work / "src")  # the build writes next to the sources: keep the tree clean
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(work / "src")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    loaded = _registry._entry_points_loaded
    _registry._entry_points_loaded = False  # read the entry points again, now that the driver is installed
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        _registry._registered.pop("toy", None)
        _registry._entry_points_loaded = loaded
        for name in [m for m in sys.modules if m == "hvkit_toy" or m.startswith("hvkit_toy.")]:
            del sys.modules[name]


def test_found_through_the_entry_point(installed: Path) -> None:
    entry = _registry.known()["toy"]
    assert entry.target == "hvkit_toy:ToyBackend" and entry.description.startswith("from ")
    (entry_points,) = installed.glob("hvkit_toy-*.dist-info/entry_points.txt")  # what pip installed
    assert "[hvkit.backends]" in entry_points.read_text() and "toy = hvkit_toy:ToyBackend" in entry_points.read_text()
    cls = _registry.load("toy")
    assert cls.__module__ == "hvkit_toy.backend" and str(installed) in str(sys.modules["hvkit_toy"].__file__)


def test_imports_only_the_public_kit() -> None:
    for path in (SOURCE / "hvkit_toy").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            )  # fmt: skip
            hvkit_names = {n for n in names if n == "hvkit" or n.startswith("hvkit.")}
            assert hvkit_names <= PUBLIC, f"{path.name} imports {hvkit_names - PUBLIC}"


def test_a_declared_limit_is_checked_before_the_driver_is_called(installed: Path) -> None:
    with hvkit.connect("toy://limits") as hv:
        with pytest.raises(hvkit.errors.InvalidSpec, match=r"at most 16 vCPUs \(max_cpus\)"):
            hv.vms.create(hvkit.VMSpec("big", cpus=32))
        assert hv.vms.list() == []


class ToyFixtures:
    pool: str | None = "default"
    network: str | None = "default"

    @pytest.fixture
    def hv(self, installed: Path) -> Iterator[hvkit.Hypervisor]:
        with hvkit.connect("toy://conformance") as hv:
            yield hv


class TestToyBasicTier(ToyFixtures, BasicTests):
    pass
