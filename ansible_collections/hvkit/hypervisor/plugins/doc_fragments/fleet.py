# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # what fleet_plan and fleet_execute take to make a placement plan
    DOCUMENTATION = r"""
options:
  members:
    description:
      - The fleet's hypervisors, label to hvkit URL or profile name (credentials come from the profile or the
        E(HVKIT_<KIND>_PASSWORD) / E(HVKIT_<KIND>_TOKEN) environment variables, never from the mapping).
    type: dict
    required: true
  kind:
    description:
      - V(balance) live-migrates VMs within each hypervisor so that every host ends under O(target) load, and
        empties hosts in maintenance or named in O(evacuate).
      - V(balance_storage) moves VM disks so that every pool ends under O(target) fullness.
      - V(consolidate) empties the most hosts while every host stays under O(target).
    type: str
    choices: [balance, balance_storage, consolidate]
    default: balance
  target:
    description: The load (or fullness) ratio every host (pool) must end under, in (0, 1].
    type: float
    default: 0.8
  evacuate:
    description: Hosts (names or ids) to empty, with O(kind=balance).
    type: list
    elements: str
    default: []
  affinity:
    description: Groups of VMs (names, ids or V(LABEL:NAME)) that must share a host.
    type: list
    elements: list
    default: []
  anti_affinity:
    description: Groups of VMs no two of which may share a host.
    type: list
    elements: list
    default: []
  demand:
    description: Load from allocated CPUs and memory, or as measured by the hypervisors' metrics.
    type: str
    choices: [allocated, measured]
    default: allocated
  max_moves:
    description: At most this many moves (balance kinds).
    type: int
  watts_per_host:
    description: With V(consolidate), the power a freed host saves (reported as power_saved_watts).
    type: float
requirements:
  - python >= 3.11
  - hvkit
"""
