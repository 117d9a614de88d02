# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
short_description: VMs of many hypervisors of any vendors as one Ansible inventory
description:
  - Reads every member hypervisor concurrently with hvkit's bulk listing (one listing per member, not one call
    per VM) and makes one inventory host per VM.
  - Groups VMs by hypervisor (C(hypervisor_<label>)), host (C(host_<name>)), power state (C(power_<state>)) and
    tag (C(tag_<tag>)); O(keyed_groups), O(groups) and O(compose) add more.
  - Hostvars carry C(hvkit_*) facts and C(ansible_host), the VM's first IP address (IPv4 first).
  - With O(cache) on, the listing is kept in Ansible's inventory cache, so repeated runs read no hypervisor
    until the cache times out.
  - A member that cannot be read is reported as a warning (and in C(hvkit_fleet_failures) of group C(all));
    the others are still listed.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
requirements:
  - python >= 3.11
  - hvkit
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; makes the file this plugin's.
    type: str
    required: true
    choices: [hvkit.hypervisor.fleet]
  members:
    description:
      - Label to hvkit URL or profile name. Credentials come from hvkit profiles or E(HVKIT_*) environment
        variables, never from the inventory file.
    type: dict
    required: true
  name:
    description: Only VMs whose name matches this shell pattern.
    type: str
  power_states:
    description: Only VMs in one of these power states.
    type: list
    elements: str
    default: []
  tags:
    description: Only VMs carrying all these tags.
    type: list
    elements: str
    default: []
  templates:
    description: List templates too.
    type: bool
    default: false
"""

EXAMPLES = r"""
# fleet.hvkit.yml
plugin: hvkit.hypervisor.fleet
members:
  prod: prod-vcenter
  lab: "proxmox://ansible@pve@pve1:8006"
power_states: [running]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-hvkit
cache_timeout: 600
keyed_groups:
  - key: hvkit_guest_os
    prefix: os
"""

from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:
    from hvkit.fleet import Fleet
except ImportError:
    Fleet = None


def _ip_sort_key(address):
    return (":" in address, address)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "hvkit.hypervisor.fleet"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("hvkit.yml", "hvkit.yaml", "fleet.yml", "fleet.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        data = None
        if use_cache:
            try:
                data = self._cache[key]
            except KeyError:
                update_cache = True
        if data is None:
            data = self.read_fleet()
        if update_cache:
            self._cache[key] = data
        self.populate(data)

    def read_fleet(self):
        """One bulk listing per member, as plain data (what the cache keeps)."""
        if Fleet is None:
            raise AnsibleError("the hvkit.hypervisor.fleet inventory needs the hvkit library (pip install hvkit)")
        members = self.get_option("members")
        try:
            with Fleet({str(k): str(v) for k, v in members.items()}) as fleet:
                inv = fleet.refresh()
        except Exception as exc:
            raise AnsibleError("hvkit fleet: %s: %s" % (type(exc).__name__, exc)) from None
        host_names = {(h.hypervisor, h.id): h.name for h in inv.hosts}
        kinds = {m.label: m.kind for m in inv.members}
        vms = []
        for vm in inv.vms:
            vms.append(
                {
                    "id": vm.id,
                    "name": vm.name,
                    "hypervisor": vm.hypervisor,
                    "kind": kinds.get(vm.hypervisor),
                    "host": host_names.get((vm.hypervisor, vm.host), vm.host),
                    "host_id": vm.host,
                    "power_state": vm.power_state.value,
                    "cpus": vm.cpus,
                    "memory_mib": vm.memory_mib,
                    "uuid": vm.uuid,
                    "guest_os": getattr(vm.guest_os, "value", vm.guest_os),
                    "firmware": vm.firmware.value,
                    "tags": sorted(vm.tags),
                    "ip_addresses": sorted(vm.ip_addresses, key=_ip_sort_key),
                    "template": vm.template,
                    "notes": vm.notes,
                }
            )
        failures = [{"hypervisor": f.hypervisor, "operation": f.operation, "error": f.error} for f in inv.failures]
        return {"vms": vms, "failures": failures}

    def wanted(self, vm):
        import fnmatch

        pattern = self.get_option("name")
        states = self.get_option("power_states")
        tags = set(self.get_option("tags"))
        return (
            (pattern is None or fnmatch.fnmatchcase(vm["name"], pattern))
            and (not states or vm["power_state"] in states)
            and tags <= set(vm["tags"])
            and (self.get_option("templates") or not vm["template"])
        )

    def populate(self, data):
        for failure in data["failures"]:
            self.display.warning(
                "hvkit fleet member %(hypervisor)s could not be read (%(operation)s): %(error)s" % failure
            )
        self.inventory.set_variable("all", "hvkit_fleet_failures", data["failures"])
        vms = [vm for vm in data["vms"] if self.wanted(vm)]
        counts = {}
        for vm in vms:
            counts[vm["name"]] = counts.get(vm["name"], 0) + 1
        strict = self.get_option("strict")
        for vm in vms:
            name = vm["name"] if counts[vm["name"]] == 1 else "%s_%s" % (vm["hypervisor"], vm["name"])
            self.inventory.add_host(name)
            for key, value in vm.items():
                self.inventory.set_variable(name, "hvkit_" + key, value)
            if vm["ip_addresses"]:
                self.inventory.set_variable(name, "ansible_host", vm["ip_addresses"][0])
            groups = ["hypervisor_" + vm["hypervisor"], "power_" + vm["power_state"]]
            if vm["host"]:
                groups.append("host_" + vm["host"])
            groups += ["tag_" + tag for tag in vm["tags"]]
            for group in groups:
                group = self._sanitize_group_name(group)
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
