"""Migration set-up of the kvm backend without guests: the option ``peers`` and the host list."""

from __future__ import annotations

import pytest

import hvkit
from hvkit.errors import InvalidSpec, NotFound, Unsupported

pytest.importorskip("libvirt")
from hvkit.backends.kvm._peers import PeerSpec, parse_peers


def test_peers_option_forms() -> None:
    assert parse_peers(None) == [] and parse_peers("") == []
    assert parse_peers("qemu+ssh://root@kvm2/system, kvm3=qemu+unix:///system?socket=/run/x/sock") == [
        PeerSpec("qemu+ssh://root@kvm2/system"),
        PeerSpec("qemu+unix:///system?socket=/run/x/sock", name="kvm3"),
    ]
    assert parse_peers([{"uri": "qemu+tcp://10.0.0.2/system", "p2p": 1, "migrate_uri": "tcp://10.0.0.2"}]) == [
        PeerSpec("qemu+tcp://10.0.0.2/system", migrate_uri="tcp://10.0.0.2", p2p=True)
    ]
    with pytest.raises(InvalidSpec):
        parse_peers([{"url": "qemu:///system"}])


def test_unreachable_peer_is_listed_not_connected() -> None:
    bad = "qemu+unix:///system?socket=/nonexistent/hvkit-peer-sock"
    with hvkit.connect("libvirt://test/default", peers=f"far={bad}") as hv:
        local, far = hv.hosts.list()
        assert local.connected and not far.connected
        assert far.id == "far" and far.extra["uri"] == bad and far.extra["error"]
        # one cluster: an unreachable peer adds no VMs; this daemon's VMs are listed and managed as before
        [vm] = hv.vms.list()
        assert vm.name == "test" and vm.host == local.id and "uri" not in vm.extra
        assert hv.vms.get("test").host == local.id
        hv.vms.stop("test", force=True)
        assert hv.vms.get("test").power_state.value == "stopped"
        with pytest.raises(NotFound):
            hv.vms.get("nowhere")
        # the test driver declares no migration at all
        with pytest.raises(Unsupported):
            hv.vms.migrate("test", host="far")
        with pytest.raises(NotFound):
            hv.hosts.get("elsewhere")
