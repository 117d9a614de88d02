"""The conformance suite every backend passes.

A backend joins with a fixture class and one line per area (or :class:`AllTests` for everything)::

    class SimFixtures:
        pool = "default"
        network = "default"

        @pytest.fixture
        def hv(self):
            with hvkit.connect("sim://conformance") as hv:
                yield hv

    class TestSim(SimFixtures, AllTests): pass

:class:`BasicTests` is the first tier a new driver passes: inventory, the VM lifecycle and the capability
contract; :class:`AllTests` adds changes (reconfigure, clone, migrate), snapshots and volumes.

Each test declares the capabilities it needs and is skipped where the backend lacks one; for every
capability a backend does not declare, CapabilityContractTests checks the call raises Unsupported.
"""

from ._base import ConformanceBase, cleanup, requires
from .changes import CloneTests, MigrateTests, ReconfigureTests
from .contract import CapabilityContractTests
from .inventory import InventoryTests
from .lifecycle import LifecycleTests
from .snapshots import SnapshotTests
from .storage import VolumeTests

__all__ = [
    "AllTests",
    "BasicTests",
    "CapabilityContractTests",
    "CloneTests",
    "ConformanceBase",
    "InventoryTests",
    "LifecycleTests",
    "MigrateTests",
    "ReconfigureTests",
    "SnapshotTests",
    "VolumeTests",
    "cleanup",
    "requires",
]


class BasicTests(InventoryTests, LifecycleTests, CapabilityContractTests):
    """The basic tier: inventory, VM lifecycle and the capability contract."""


class AllTests(
    InventoryTests,
    LifecycleTests,
    ReconfigureTests,
    CloneTests,
    MigrateTests,
    SnapshotTests,
    VolumeTests,
    CapabilityContractTests,
):
    """Every area at once."""
