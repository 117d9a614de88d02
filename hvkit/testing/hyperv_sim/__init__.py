"""A Hyper-V host model behind a real WinRM endpoint, for offline tests of the Hyper-V backend.

::

    from hvkit.testing.hyperv_sim import HyperVHost

    with HyperVHost() as host:
        hv = hvkit.connect(host.url, password=host.password, ca_file=host.ca_file)
"""

from __future__ import annotations

from ._binding import CMDLETS, validate
from ._output import PSError, clixml, convert_to_json
from .host import HyperVHost

__all__ = ["CMDLETS", "HyperVHost", "PSError", "clixml", "convert_to_json", "validate"]
