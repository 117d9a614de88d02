"""Benchmark the Hyper-V backend against the Hyper-V host model behind a real WinRM endpoint.

Inventory (``hv.vms.list()``): WinRM round trips (scripts) and HTTP requests at 50 and at 500 VMs
(goal: equal), and hvkit's time over one hand-written ``Get-VM | ConvertTo-Json`` round trip through
pywinrm in the same kind of shell (goal: <= 1.3x).

Run: ``python bench/hyperv_inventory.py``
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import hvkit
from hvkit.testing.hyperv_sim import HyperVHost


def _median_time(fn: Any, runs: int) -> float:
    fn()  # warm up (TLS, NTLM, shell)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    from winrm.protocol import Protocol

    with HyperVHost() as host:
        hv = hvkit.connect(host.url, password=host.password, ca_file=host.ca_file, timeout=60)
        counts = {}
        for total in (50, 500):
            host.populate(total - len(host.state.vms))
            host.endpoint.reset_counts()
            trips = hv.backend.round_trips  # type: ignore[attr-defined]
            vms = hv.vms.list()
            assert len(vms) == total
            scripts = hv.backend.round_trips - trips  # type: ignore[attr-defined]
            counts[total] = (scripts, host.endpoint.http_requests)
            print(
                f"inventory of {total:>3} VMs: {scripts} WinRM round trip(s) (one script), "
                f"{host.endpoint.http_requests} HTTP requests {sorted(set(host.endpoint.shells.actions))}"
            )
        print(f"round trips equal at 50 and 500 VMs: {counts[50] == counts[500]}")

        # the hand-written baseline: one shell, one 'Get-VM | ConvertTo-Json' over stdin, as hvkit runs scripts
        raw = Protocol(
            host.endpoint.endpoint,
            transport="ntlm",
            username=host.user,
            password=host.password,
            ca_trust_path=host.ca_file,
            read_timeout_sec=70,
            operation_timeout_sec=60,
        )
        shell = raw.open_shell()

        def by_hand() -> bytes:
            command = raw.run_command(shell, "powershell", ["-NoProfile", "-NonInteractive", "-Command", "-"])
            raw.send_command_input(shell, command, b"Get-VM | ConvertTo-Json\r\n", end=True)
            out, _err, code = raw.get_command_output(shell, command)
            raw.cleanup_command(shell, command)
            assert code == 0
            return out

        size = len(by_hand())
        bare = _median_time(by_hand, 9)
        ours = _median_time(hv.vms.list, 9)
        print(
            f"500 VMs: 'Get-VM | ConvertTo-Json' by hand {bare * 1000:.1f} ms ({size // 1024} KiB), "
            f"hv.vms.list() {ours * 1000:.1f} ms"
        )
        print(f"hvkit / hand-written round trip: {ours / bare:.2f}x (goal <= 1.3x)")
        raw.close_shell(shell)
        hv.close()


if __name__ == "__main__":
    main()
