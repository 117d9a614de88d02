"""The default VMware listing against a hand-written PropertyCollector read, on vcsim.

Run: .venv/bin/python bench/vmware_list_default.py [--vms 1000] [--rounds 5]

Prints, per VM count, best-of-``rounds`` times and ratios:

* default: ``hv.vms.list()`` (identity, power state, CPUs, memory, host, IPs, template flag, guest family,
  datastores; no devices) over a hand-written read of name, power state, CPUs, memory, host and IPs;
* detail: ``hv.vms.list(detail=True)`` (devices too: disks with their datastores, NICs with their
  networks) over a hand-written read of the very same properties;
* before: what ``hv.vms.list()`` read before it had ``detail`` (devices; today's option ``vm_list=full``)
  over the hand-written read of name, power state, CPUs, memory, host and IPs.

The hand-written side is bench/vmware_list.py's: one ContainerView, one RetrievePropertiesEx (continued
while the server pages), DestroyView.
"""

from __future__ import annotations

import argparse
from typing import Any

from vmware_list import BRIEF, HandWritten, best

import hvkit
from hvkit.backends.vmware.backend import VM_PROPS
from hvkit.testing.vcsim import Vcsim, VcsimConfig


def measure(total_vms: int, rounds: int) -> list[tuple[str, int, float, float]]:
    rows = []
    with Vcsim(VcsimConfig(vms=max(1, total_vms // 2), autostart=False)) as sim:
        hand = HandWritten(sim)
        try:
            with hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file) as hv:
                for label, fields, detail in (("default", BRIEF, False), ("detail", VM_PROPS, True)):
                    vms: list[Any] = hv.vms.list(detail=detail)  # the session's ContainerView is made on first use
                    assert len(vms) == len(hand.list(fields))
                    assert all(bool(v.disks) == detail for v in vms)
                    t_hand = best(lambda f=fields: hand.list(f), rounds)  # type: ignore[misc]
                    t_hv = best(lambda d=detail: hv.vms.list(detail=d), rounds)  # type: ignore[misc]
                    rows.append((label, len(vms), t_hand, t_hv))
            with hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file, vm_list="full") as old:
                old.vms.list()
                t_hand = best(lambda: hand.list(BRIEF), rounds)
                rows.append(("before", len(old.vms.list()), t_hand, best(old.vms.list, rounds)))
        finally:
            hand.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="hvkit's default VMware listing against a hand-written read")
    parser.add_argument("--vms", type=int, nargs="*", default=[1000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'listing':>8} {'VMs':>6} {'hand s':>8} {'hvkit s':>8} {'ratio':>6}")
    for count in args.vms:
        for label, vms, t_hand, t_hv in measure(count, args.rounds):
            print(f"{label:>8} {vms:>6} {t_hand:>8.3f} {t_hv:>8.3f} {t_hv / t_hand:>6.2f}x")


if __name__ == "__main__":
    main()
