"""A WinRM endpoint for offline tests: HTTPS (or encrypted HTTP) on loopback, NTLM through pyspnego's
acceptor, the WS-Management shell protocol, and a pluggable command runner (the Hyper-V host model).

::

    from hvkit.testing.winrm_sim import Process, WinRMEndpoint

    with WinRMEndpoint(lambda user, words, stdin: Process(stdout=stdin)) as ep:
        ...  # pywinrm.Protocol(ep.endpoint, transport="ntlm", ...)
"""

from __future__ import annotations

from ._wsman import Process, Runner, ShellService, WSManFault
from .server import WinRMEndpoint

__all__ = ["Process", "Runner", "ShellService", "WSManFault", "WinRMEndpoint"]
