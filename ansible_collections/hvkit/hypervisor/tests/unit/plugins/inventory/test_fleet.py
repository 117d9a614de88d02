# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import hvkit
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.hvkit.hypervisor.plugins.inventory.fleet import InventoryModule


def make_plugin(options):
    plugin = InventoryModule()
    plugin.inventory = InventoryData()
    plugin.templar = Templar(loader=DataLoader())
    plugin._options = dict(
        dict(name=None, power_states=[], tags=[], templates=False, strict=False, compose={}, groups={}, keyed_groups=[],
             leading_separator=True, use_extra_vars=False),
        **options,
    )  # fmt: skip
    return plugin


def test_groups_and_hostvars(sim_url):
    with hvkit.connect(sim_url) as hv:
        a = hv.vms.create(
            hvkit.VMSpec(name="web-1", nics=[hvkit.NicSpec(network="default")], tags={"web"}, host="host-2")
        )
        hv.vms.start(a)
        hv.vms.create(hvkit.VMSpec(name="db-1", tags={"db"}))
    plugin = make_plugin(dict(members={"lab": sim_url}))
    data = plugin.read_fleet()
    plugin.populate(data)
    inv = plugin.inventory
    assert set(inv.hosts) == {"web-1", "db-1"}
    assert "web-1" in inv.groups["hypervisor_lab"].get_hosts()[0].name or {
        h.name for h in inv.groups["hypervisor_lab"].get_hosts()
    } == {"web-1", "db-1"}
    assert [h.name for h in inv.groups["power_running"].get_hosts()] == ["web-1"]
    assert [h.name for h in inv.groups["tag_db"].get_hosts()] == ["db-1"]
    assert [h.name for h in inv.groups["host_sim_host_2"].get_hosts()] == ["web-1"]
    web = inv.get_host("web-1").vars
    assert web["hvkit_power_state"] == "running" and web["hvkit_hypervisor"] == "lab" and web["hvkit_kind"] == "sim"
    assert web["ansible_host"] == web["hvkit_ip_addresses"][0]


def test_filters_and_unreachable_member(sim_url):
    with hvkit.connect(sim_url) as hv:
        hv.vms.create(hvkit.VMSpec(name="web-1"))
        hv.vms.create(hvkit.VMSpec(name="db-1"))
    plugin = make_plugin(
        dict(members={"lab": sim_url, "gone": "proxmox://root@pam@127.0.0.1:1?timeout=2"}, name="web-*")
    )
    data = plugin.read_fleet()
    assert [f["hypervisor"] for f in data["failures"]] == ["gone"]
    plugin.populate(data)
    assert set(plugin.inventory.hosts) == {"web-1"}


def test_cache_serves_a_second_parse_without_reading(sim_url, tmp_path, monkeypatch):
    with hvkit.connect(sim_url) as hv:
        hv.vms.create(hvkit.VMSpec(name="web-1"))
    cache = {}
    reads = []
    for refresh in (True, False):  # ansible-inventory --flush-cache, then a plain run
        plugin = make_plugin(dict(members={"lab": sim_url}, cache=True))
        monkeypatch.setattr(plugin, "_read_config_data", lambda path: None)
        plugin._cache = cache
        original = plugin.read_fleet
        monkeypatch.setattr(plugin, "read_fleet", lambda original=original: reads.append(1) or original())
        plugin.parse(InventoryData(), DataLoader(), str(tmp_path / "inv.hvkit.yml"), cache=not refresh)
        assert set(plugin.inventory.hosts) == {"web-1"}
    assert len(reads) == 1 and len(cache) == 1
