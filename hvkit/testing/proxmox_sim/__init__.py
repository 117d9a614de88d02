"""A Proxmox VE API simulator for offline tests (HTTPS on loopback, validated against PVE's schema).

::

    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    with ProxmoxSimulator(nodes=3) as sim:
        hv = hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file)
"""

from __future__ import annotations

from .server import ProxmoxSimulator
from .state import Cluster, PVEError

__all__ = ["Cluster", "PVEError", "ProxmoxSimulator"]
