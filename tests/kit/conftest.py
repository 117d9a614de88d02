from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import hvkit
from hvkit.backends.sim import forget


@pytest.fixture
def sim() -> Iterator[hvkit.Hypervisor]:
    """A fresh, private sim hypervisor."""
    name = f"k{uuid.uuid4().hex[:8]}"
    with hvkit.connect(f"sim://{name}") as hv:
        yield hv
    forget(name)


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """No test reads the user's own config, credentials or sim state."""
    monkeypatch.setenv("HVKIT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path / "sim-state"))
    for var in ("HVKIT_URL", "HVKIT_PASSWORD", "HVKIT_USERNAME", "HVKIT_TOKEN", "HVKIT_SIM_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
