"""Plan a migration: read the source VM, map its configuration onto the target, list what blocks it.

Planning changes nothing on either side. Blocking problems (no capacity, name taken, unmapped network,
unsupported firmware or disk, snapshots that would be lost, ...) and warnings (drivers the guest may
need, vendor tools, ...) are listed before anything moves; :meth:`MigrationPlan.run` refuses a plan with problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._resolve import lookup
from .._units import format_bytes
from ..capabilities import Capability
from ..errors import HvkitError, InvalidSpec, Unsupported
from ..models import VM, DiskBus, DiskFormat, Firmware, GuestOS, NicModel, PowerState, StoragePool
from ..models.enums import to_enum
from ..models.spec import check_name, normalize_mac
from ._migration_plan import DiskPlan, MigrationPlan, NicPlan

if TYPE_CHECKING:
    from ..hypervisor import Hypervisor

__all__ = ["DiskPlan", "MigrationPlan", "NicPlan", "plan"]

_THIN = {DiskFormat.QCOW2, DiskFormat.VMDK, DiskFormat.VHDX, DiskFormat.VHD, DiskFormat.VDI}


def can_export(hv: Hypervisor) -> bool:
    """The backend reads disks out: by a way of its own (its traits say so) or by volume download."""
    return hv.backend.traits.disk_export or Capability.VOLUME_DOWNLOAD in hv.capabilities


def can_import(hv: Hypervisor) -> bool:
    """The backend takes disks in: by a way of its own (its traits say so) or by volume create + upload."""
    caps = hv.capabilities
    return hv.backend.traits.disk_import or {Capability.VOLUME_CREATE, Capability.VOLUME_UPLOAD} <= caps


def _parse_map(what: str, value: Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{what} must be a mapping of source name to target name, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k or not v:
            raise InvalidSpec(f"{what} entries must be non-empty names, got {k!r}: {v!r}")
        out[k] = v
    return out


def _pick_format(
    pool: StoragePool, source: DiskFormat | None, wanted: DiskFormat | None, declared: tuple[DiskFormat, ...]
) -> DiskFormat | str:
    """The target volume's format: ``wanted``, else the source's where the pool (or, when the pool does not
    say, the backend's declared ``disk_formats``) takes it, else qcow2, raw or the first one taken."""
    formats = pool.formats
    if wanted is not None:
        if formats and wanted not in formats:
            ok = ", ".join(sorted(f.value for f in formats))
            return f"target pool {pool.name!r} does not take {wanted.value} disks (it takes: {ok})"
        return wanted
    if not formats and declared:
        return source if source in declared else declared[0]
    if not formats:
        return source or DiskFormat.QCOW2
    for candidate in (source, DiskFormat.QCOW2, DiskFormat.RAW):
        if candidate is not None and candidate in formats:
            return candidate
    return sorted(formats, key=lambda f: f.value)[0]


def plan(
    source: Hypervisor,
    vm: VM | str,
    target: Hypervisor,
    *,
    name: str | None = None,
    network_map: Mapping[str, str] | None = None,
    storage_map: Mapping[str, str] | None = None,
    disk_format: DiskFormat | str | None = None,
    disk_bus: DiskBus | str | None = None,
    nic_model: NicModel | str | None = None,
    keep_macs: bool = True,
    power_off: bool = False,
    snapshot: bool = False,
    allow_snapshot_loss: bool = False,
    verify: bool = True,
) -> MigrationPlan:
    """Plan moving ``vm`` from ``source`` to ``target``; changes nothing.

    ``network_map`` / ``storage_map`` map source network / pool names (or ids) to the target's (a name
    the target has too maps to itself). The source VM must be stopped, unless ``power_off=True``
    (hvkit shuts it down) or ``snapshot=True`` (a snapshot taken now is exported; the VM keeps
    running). Snapshots the source VM has are not migrated: ``allow_snapshot_loss=True`` accepts that.
    """
    if source is target:
        raise InvalidSpec("source and target are the same connection; use hv.vms.migrate / clone within one hypervisor")
    if name is not None:
        check_name("target VM name", name)
    nets = _parse_map("network_map", network_map)
    stores = _parse_map("storage_map", storage_map)
    want_fmt = None if disk_format is None else to_enum(DiskFormat, disk_format, "disk_format")
    want_bus = None if disk_bus is None else to_enum(DiskBus, disk_bus, "disk_bus")
    want_nic = None if nic_model is None else to_enum(NicModel, nic_model, "nic_model")
    if power_off and snapshot:
        raise InvalidSpec("choose power_off=True or snapshot=True, not both")
    src_vm = vm if isinstance(vm, VM) else source.vms.get(vm)
    src_vm = source.vms.get(src_vm.id)
    problems: list[str] = []
    warnings: list[str] = []
    tkind = target.kind
    traits = target.backend.traits
    source_tools = source.backend.traits.guest_tools
    target_name = name or src_vm.name

    # -- what the two backends can do ----------------------------------------------------------------------
    if not can_export(source):
        problems.append(f"the {source.kind} backend cannot export disks (no disk export, no volume download)")
    if not can_import(target):
        problems.append(f"the {tkind} backend cannot import disks (no disk import, no volume create + upload)")
    if Capability.VM_CREATE not in target.capabilities:
        problems.append(f"the {tkind} backend cannot create VMs")
    if verify and not can_export(target):
        problems.append(
            f"the {tkind} backend cannot read disks back to verify them (pass verify=False to skip, not advised)"
        )

    # -- source state and snapshots ---------------------------------------------------------------------------
    if src_vm.template:
        warnings.append(f"{src_vm.name!r} is a template on the source; the copy is created as a normal VM")
    state = src_vm.power_state
    if state is not PowerState.STOPPED:
        if snapshot:
            if Capability.SNAPSHOT not in source.capabilities:
                problems.append(f"snapshot=True needs snapshots, which the {source.kind} backend does not offer")
            if state is PowerState.RUNNING:
                warnings.append("the disks are exported from a snapshot of a running guest: crash-consistent only")
        elif power_off:
            if Capability.VM_POWER not in source.capabilities:
                problems.append(f"power_off=True needs power control, which the {source.kind} backend does not offer")
            if state not in (PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED, PowerState.CRASHED):
                problems.append(f"the source VM is {state.value}; wait until it is running or stopped")
        else:
            problems.append(
                f"the source VM {src_vm.name!r} is {state.value}: stop it, or pass power_off=True (hvkit shuts it "
                "down) or snapshot=True (hvkit exports a snapshot taken now)"
            )
    if Capability.SNAPSHOT in source.capabilities:
        try:
            snaps = source.snapshots.list(src_vm.id)
        except HvkitError as exc:
            snaps = []
            warnings.append(f"could not list the source VM's snapshots: {exc}")
        if snaps:
            names = ", ".join(s.name for s in snaps[:5])
            if allow_snapshot_loss:
                warnings.append(f"the source VM's {len(snaps)} snapshot(s) ({names}) are not migrated")
            else:
                problems.append(
                    f"the source VM has {len(snaps)} snapshot(s) ({names}) that would be lost: delete them, or "
                    "pass allow_snapshot_loss=True to migrate the current state only"
                )

    # -- target: name, capacity -----------------------------------------------------------------------------
    target_vms = target.vms.list()
    if any(v.name == target_name for v in target_vms):
        problems.append(f"a VM named {target_name!r} exists already on the target (pass name=... to pick another)")
    try:
        hosts = target.hosts.list()
    except Unsupported:
        hosts = []
    live_hosts = [h for h in hosts if h.connected and not h.maintenance]
    if hosts and not live_hosts:
        problems.append("the target has no connected host out of maintenance mode")
    elif live_hosts:
        if max(h.cpu_threads for h in live_hosts) < src_vm.cpus:
            problems.append(
                f"no target host has {src_vm.cpus} CPUs (largest: {max(h.cpu_threads for h in live_hosts)})"
            )
        biggest = max(h.memory_mib for h in live_hosts)
        if biggest < src_vm.memory_mib:
            problems.append(f"no target host has {src_vm.memory_mib} MiB of memory (largest: {biggest} MiB)")

    # -- firmware and guest ---------------------------------------------------------------------------------
    firmware = src_vm.firmware
    if firmware is Firmware.UEFI:
        if Capability.UEFI not in target.capabilities:
            problems.append(f"the source VM boots with UEFI, which the {tkind} backend does not offer")
        elif traits.uefi_note:
            warnings.append(traits.uefi_note)
        else:
            warnings.append(
                "UEFI: boot entries kept in the source's NVRAM are not carried over; the guest must boot "
                "from the default path (\\EFI\\BOOT\\BOOTX64.EFI) or be fixed up once"
            )
    guest = src_vm.guest_os
    if guest is None:
        warnings.append("the source does not say which guest OS runs; assuming 'other'")
        guest = GuestOS.OTHER
    if source_tools and source_tools != traits.guest_tools:
        warnings.append(f"{source_tools} in the guest do nothing on {tkind}; remove them after the move")
    if traits.guest_tools and source_tools != traits.guest_tools:
        warnings.append(f"install {traits.guest_tools} in the guest after the move")

    # -- disks ------------------------------------------------------------------------------------------------
    pools = target.pools.list()
    disks: list[DiskPlan] = []
    need: dict[str, int] = {}
    taken_volumes: set[str] = set()
    buses = traits.disk_buses
    for i, disk in enumerate(src_vm.disks):
        if disk.volume is None:
            problems.append(f"disk {disk.name!r} is not a volume hvkit can read (a pass-through device?)")
            continue
        try:
            vol = source.volumes.get(disk.volume)
        except HvkitError as exc:
            problems.append(f"disk {disk.name!r}: cannot read its volume: {exc}")
            continue
        src_pool = disk.pool or vol.pool
        mapped = stores.get(src_pool or "", None)
        tpool = lookup(pools, mapped or src_pool or "")
        if tpool is None:
            if mapped:
                problems.append(f"storage_map sends pool {src_pool!r} to {mapped!r}, which the target does not have")
            else:
                problems.append(
                    f"source pool {src_pool!r} (disk {disk.name!r}) is not mapped: pass "
                    f"storage_map={{{src_pool!r}: <target pool>}} (target pools: "
                    f"{', '.join(sorted(p.name for p in pools)) or 'none'})"
                )
            continue
        if not tpool.active:
            problems.append(f"target pool {tpool.name!r} is not active")
        fmt = _pick_format(tpool, vol.format or disk.format, want_fmt, traits.disk_formats)
        if isinstance(fmt, str):
            problems.append(fmt)
            continue
        bus = want_bus or disk.bus or DiskBus.VIRTIO
        if bus not in buses:
            if want_bus is not None:
                problems.append(f"the {tkind} backend has no {bus.value} disk bus")
                continue
            new_bus = traits.default_disk_bus
            warnings.append(
                f"disk {disk.name!r} moves from the {bus.value} bus to {new_bus.value}: the guest needs "
                f"a {new_bus.value} driver to boot from it"
            )
            bus = new_bus
        elif disk.bus is not None and bus is not disk.bus:
            warnings.append(
                f"disk {disk.name!r} moves from the {disk.bus.value} bus to {bus.value}: the guest needs "
                f"a {bus.value} driver to boot from it"
            )
        if bus is DiskBus.VIRTIO and guest is GuestOS.WINDOWS:
            warnings.append(
                f"disk {disk.name!r} is on virtio: a Windows guest needs the virtio drivers installed first"
            )
        vname = f"{target_name}-disk{i}"
        existing = {v.name for v in target.volumes.list(tpool)} if tpool.name not in taken_volumes else set()
        taken_volumes.add(tpool.name)
        if vname in existing or any(n.rsplit(".", 1)[0] == vname for n in existing):
            problems.append(f"a volume named {vname!r} exists already in target pool {tpool.name!r}")
        size = max(disk.size_bytes, vol.capacity_bytes)  # never cut a disk short when one of them is off
        allocated = min(size, vol.allocation_bytes) if vol.allocation_bytes is not None else size
        need[tpool.name] = need.get(tpool.name, 0) + (allocated if fmt in _THIN else size)
        disks.append(DiskPlan(i, disk.name, vol.id, src_pool, size, allocated, vol.format or disk.format,
                              disk.bus, tpool.name, fmt, bus, vname))  # fmt: skip
    for pname, nbytes in need.items():
        pool = lookup(pools, pname)
        if pool is not None and nbytes > pool.free_bytes:
            problems.append(
                f"target pool {pname!r} has {format_bytes(pool.free_bytes)} free; the disks need {format_bytes(nbytes)}"
            )
    for key in stores:
        if not any(dp.source_pool == key for dp in disks) and not any(d.pool == key for d in src_vm.disks):
            warnings.append(f"storage_map entry {key!r} matches no disk of the VM")

    # -- NICs ------------------------------------------------------------------------------------------------
    tnets = target.networks.list() if src_vm.nics else []
    models = traits.nic_models
    used_macs = {n.mac.lower() for v in target_vms for n in v.nics}
    nics: list[NicPlan] = []
    for nic in src_vm.nics:
        src_net = nic.network
        mapped = nets.get(src_net or "", None)
        tnet = lookup(tnets, mapped or src_net or "")
        if tnet is None:
            if mapped:
                problems.append(f"network_map sends {src_net!r} to {mapped!r}, which the target does not have")
            else:
                problems.append(
                    f"network {src_net!r} (NIC {nic.mac}) is not mapped: pass network_map={{{src_net!r}: "
                    f"<target network>}} (target networks: {', '.join(sorted(n.name for n in tnets)) or 'none'})"
                )
            continue
        model = want_nic or nic.model or NicModel.VIRTIO
        if model not in models:
            new = traits.default_nic_model
            warnings.append(
                f"NIC {nic.mac}: the {tkind} backend has no {model.value} model; using {new.value} "
                "(the guest needs its driver)"
            )
            model = new
        elif nic.model is not None and model is not nic.model:
            warnings.append(
                f"NIC {nic.mac} changes from {nic.model.value} to {model.value}: the guest needs its driver "
                "and may rename the interface"
            )
        if model is NicModel.VIRTIO and guest is GuestOS.WINDOWS:
            warnings.append(f"NIC {nic.mac} is virtio: a Windows guest needs the virtio drivers installed first")
        mac: str | None = None
        if keep_macs:
            try:
                mac = normalize_mac(nic.mac)
            except InvalidSpec as exc:
                problems.append(f"NIC {nic.mac!r}: {exc}")
                continue
            if mac in used_macs:
                problems.append(f"MAC {mac} is in use by a VM on the target already (pass keep_macs=False)")
            if not traits.owns_mac(mac):
                ranges = ", ".join(str(r) for r in traits.mac_ranges)
                warnings.append(
                    f"MAC {mac} is outside the {tkind} backend's range for static MACs ({ranges}); "
                    "it may refuse it (pass keep_macs=False)"
                )
        else:
            warnings.append(f"NIC {nic.mac} gets a new MAC: the guest may rename the interface or lose a DHCP lease")
        nics.append(NicPlan(nic.mac, mac, src_net, tnet.name, nic.model, model))
    for key in nets:
        if not any(n.network == key for n in src_vm.nics):
            warnings.append(f"network_map entry {key!r} matches no NIC of the VM")
    if not src_vm.disks:
        warnings.append("the source VM has no disks")
    problems += traits.limits.problems(
        tkind, name=target_name, cpus=src_vm.cpus, memory_mib=src_vm.memory_mib, buses=[d.target_bus for d in disks]
    )
    return MigrationPlan(
        source, target, src_vm, target_name, src_vm.cpus, src_vm.memory_mib, firmware, guest, tuple(disks),
        tuple(nics), tuple(dict.fromkeys(problems)), tuple(dict.fromkeys(warnings)), power_off, snapshot, verify,
        src_vm.notes,
    )  # fmt: skip
