"""The simulated PVE API: clone, template, migrate and move disk."""

from __future__ import annotations

from typing import Any

from ._api_qemu import smbios_uuid
from ._request import Request, route
from ._values import image_info, mac_for, qemu_img
from .state import Cluster, PVEError, VMState
from .tasks import TaskContext


# -- clone, template, migrate, move disk ------------------------------------------------------------------
def _disk_items(c: Cluster, vm: VMState, *, cloudinit: bool = False) -> list[tuple[str, dict[str, str]]]:
    return [
        (k, d)
        for k, d in c.vm_disks(vm).items()
        if not k.startswith("unused")
        and ":" in d.get("file", "")
        and (d.get("media") != "cdrom" or (cloudinit and "cloudinit" in d.get("file", "")))
    ]


@route("/nodes/{node}/qemu/{vmid}/clone", "POST")
def qemu_clone(r: Request) -> Any:
    src = r.vm()
    newid = int(r.p["newid"])
    target = r.p.get("target", r.node)
    r.c.check_node(target)
    is_template = src.config.get("template") == "1"
    full = r.flag("full", default=not is_template)
    if not is_template and not full:
        raise PVEError(500, "Linked clone feature is only available for templates")
    storage = r.p.get("storage")
    if storage is not None and not full:
        raise PVEError(400, "Parameter verification failed.", {"storage": "option is only allowed for full clones\n"})
    disks = _disk_items(r.c, src)
    if target != r.node:
        for _, d in disks:
            st, _ = r.c.parse_volid(d["file"])
            if not st.shared and storage is None:
                raise PVEError(500, f"can't clone VM to node '{target}' (VM uses local storage)")
    if not is_template:
        r.c.check_lock(src)
    with r.c.mu:
        if newid in r.c.vms:
            raise PVEError(500, f"unable to create VM {newid}: config file already exists")
        new = VMState(newid, target, {"lock": "clone"})
        r.c.vms[newid] = new

    def work(ctx: TaskContext) -> None:
        allocated: list[tuple[str, str]] = []
        try:
            # PVE takes the source's config lock while it reads the config and allocates the new volumes;
            # a non-template source is marked ``lock: clone`` for the whole copy.
            with r.c.config_lock(src.vmid):
                if not is_template:
                    r.c.check_lock(src)
                    src.config["lock"] = "clone"
                cfg = {
                    k: v
                    for k, v in src.config.items()
                    if k not in ("template", "lock", "parent", "vmstate", "meta", "smbios1", "vmgenid")
                    and not k.startswith("unused")
                }
                ctx.sleep(0.3)
            cfg["name"] = r.p.get("name", f"Copy-of-VM-{cfg.get('name', src.vmid)}")
            for key in [k for k in cfg if k.startswith("net")]:
                model_mac, _, rest = cfg[key].partition(",")
                model = model_mac.split("=")[0]
                cfg[key] = f"{model}={mac_for(newid, int(key[3:]))}" + (f",{rest}" if rest else "")
            for key, d in disks:
                st, name = r.c.parse_volid(d["file"])
                src_path = r.c.volume_path(src.node, d["file"])
                size = int(image_info(src_path)["virtual-size"])
                if full:
                    sid = storage or st.id
                    fmt = r.p.get("format") if r.c.storages[sid].file_based else None
                    volid = r.c.alloc(
                        target,
                        sid,
                        newid,
                        size,
                        fmt
                        or (
                            image_info(src_path)["format"]
                            if r.c.storages[sid].file_based
                            and image_info(src_path)["format"] in r.c.storages[sid].formats
                            else None
                        ),
                    )
                    allocated.append((target, volid))
                    ctx.log(f"create full clone of drive {key} ({d['file']})")
                    dst_path = r.c.volume_path(target, volid)
                    qemu_img("convert", "-q", "-O", image_info(dst_path)["format"], str(src_path), str(dst_path))
                    ctx.progress(key, size, size)
                else:
                    ctx.log(f"create linked clone of drive {key} ({d['file']})")
                    base_name = name.split("/")[-1]
                    if st.file_based:
                        volid = f"{st.id}:{src.vmid}/{base_name}/{newid}/vm-{newid}-disk-{len(allocated)}.qcow2"
                        dst_path = r.c.volume_path(target, volid)
                        dst_path.parent.mkdir(parents=True, exist_ok=True)
                        qemu_img(
                            "create",
                            "-q",
                            "-f",
                            "qcow2",
                            "-b",
                            str(src_path),
                            "-F",
                            image_info(src_path)["format"],
                            str(dst_path),
                        )
                    else:
                        with r.c.storage_lock(st.id):
                            volid = f"{st.id}:{base_name}/vm-{newid}-disk-{len(allocated)}"
                            dst_path = r.c.volume_path(target, volid)
                            qemu_img("create", "-q", "-f", "qcow2", "-b", str(src_path), "-F", "raw", str(dst_path))
                    allocated.append((target, volid))
                d2 = dict(d)
                d2["file"] = volid
                cfg[key] = ",".join([volid, *(f"{k}={v}" for k, v in d2.items() if k != "file")])
                ctx.sleep(0.7 / max(1, len(disks)))
            for key, d in list(r.c.vm_disks(src).items()):
                if "cloudinit" in d.get("file", ""):
                    sid = storage or d["file"].split(":")[0]
                    volid = r.c.alloc(
                        target,
                        sid,
                        newid,
                        4 * 1024 * 1024,
                        None,
                        name=f"vm-{newid}-cloudinit" + (".qcow2" if r.c.storages[sid].file_based else ""),
                    )
                    allocated.append((target, volid))
                    cfg[key] = f"{volid},media=cdrom"
            if "description" in r.p:
                cfg["description"] = r.p["description"]
            cfg["smbios1"] = f"uuid={smbios_uuid(newid)}"
            new.config = cfg
        except BaseException:
            for node, volid in allocated:
                r.c.free_volume(node, volid)
            with r.c.mu:
                r.c.vms.pop(newid, None)
            raise
        finally:
            if not is_template and src.config.get("lock") == "clone":
                src.config.pop("lock", None)

    return r.task("qmclone", str(src.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/template", "POST")
def qemu_template(r: Request) -> Any:
    vm = r.vm()
    r.c.check_lock(vm)
    if vm.status == "running":
        raise PVEError(500, "you can't convert a VM to template if VM is running")

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            for key, d in _disk_items(r.c, vm):
                file = d["file"]
                old = r.c.volume_path(vm.node, file)
                new_file = file.replace(f"vm-{vm.vmid}-disk", f"base-{vm.vmid}-disk")
                newp = r.c.volume_path(vm.node, new_file)
                old.rename(newp)
                vm.config[key] = vm.config[key].replace(file, new_file)
            vm.config["template"] = "1"

    return r.task("qmtemplate", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/migrate", "POST")
def qemu_migrate(r: Request) -> Any:
    vm = r.vm()
    target = r.p["target"]
    r.c.check_node(target)
    if target == vm.node:
        raise PVEError(400, "Parameter verification failed.", {"target": "target is local node.\n"})
    r.c.check_lock(vm)
    online = r.flag("online")
    if vm.status == "running" and not online:
        raise PVEError(500, "can't migrate running VM without --online")
    for _, d in _disk_items(r.c, vm, cloudinit=True):
        st = r.c.parse_volid(d["file"])[0]
        if st.shared and not st.on(target):  # storage.cfg "nodes" leaves the target out
            raise PVEError(500, f"storage '{st.id}' is not available on node '{target}'")
    local = [(k, d) for k, d in _disk_items(r.c, vm, cloudinit=True) if not r.c.parse_volid(d["file"])[0].shared]
    if any(d.get("media") != "cdrom" for _, d in local) and not r.flag("with-local-disks"):
        raise PVEError(500, f"can't migrate local disk '{local[0][1]['file']}': use --with-local-disks option")
    pairs = r.p.get("targetstorage", "")
    mapping: dict[str, str] = {}
    default_target: str | None = None
    for pair in [p for p in pairs.split(",") if p]:
        if ":" in pair:
            a, b = pair.split(":", 1)
            mapping[a] = b
        else:
            default_target = pair

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            vm.config["lock"] = "migrate"
        moved: list[tuple[str, str]] = []
        try:
            ctx.log(f"starting migration of VM {vm.vmid} to node '{target}'")
            new_cfg = dict(vm.config)
            for key, d in local:
                st, _ = r.c.parse_volid(d["file"])
                sid = mapping.get(st.id, default_target or st.id)
                src_path = r.c.volume_path(vm.node, d["file"])
                info = image_info(src_path)
                fmt = info["format"] if info["format"] in r.c.storages[sid].formats else None
                name = (
                    (f"vm-{vm.vmid}-cloudinit" + (".qcow2" if r.c.storages[sid].file_based else ""))
                    if "cloudinit" in d["file"]
                    else None
                )
                volid = r.c.alloc(target, sid, vm.vmid, int(info["virtual-size"]), fmt, name=name)
                moved.append((target, volid))
                dst = r.c.volume_path(target, volid)
                qemu_img("convert", "-q", "-O", image_info(dst)["format"], str(src_path), str(dst))
                ctx.progress(f"drive-{key}", int(info["virtual-size"]), int(info["virtual-size"]))
                new_cfg[key] = new_cfg[key].replace(d["file"], volid, 1)
                ctx.sleep(0.5 / max(1, len(local)))
            ctx.sleep(0.5)
            old_node = vm.node
            for _, d in local:
                r.c.free_volume(old_node, d["file"])
            new_cfg.pop("lock", None)
            with r.c.mu:
                vm.config = new_cfg
                vm.node = target
            ctx.log("migration finished successfully")
        except BaseException:
            for node, volid in moved:
                r.c.free_volume(node, volid)
            vm.config.pop("lock", None)
            raise

    return r.task("qmigrate", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/move_disk", "POST")
def qemu_move_disk(r: Request) -> Any:
    vm = r.vm()
    disk = r.p["disk"]
    if disk not in vm.config:
        raise PVEError(500, f"disk '{disk}' does not exist")
    if "storage" not in r.p:
        raise PVEError(
            400, "Parameter verification failed.", {"storage": "property is missing and it is not optional\n"}
        )
    r.c.check_lock(vm)

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            d = dict(r.c.vm_disks(vm)[disk])
            src_path = r.c.volume_path(vm.node, d["file"])
            info = image_info(src_path)
            sid = r.p["storage"]
            fmt = r.p.get("format") or (info["format"] if info["format"] in r.c.storages[sid].formats else None)
            volid = r.c.alloc(vm.node, sid, vm.vmid, int(info["virtual-size"]), fmt)
            try:  # PVE frees the new volume when the copy fails
                dst = r.c.volume_path(vm.node, volid)
                qemu_img("convert", "-q", "-O", image_info(dst)["format"], str(src_path), str(dst))
                ctx.progress(f"drive-{disk}", int(info["virtual-size"]), int(info["virtual-size"]))
                ctx.check()
            except BaseException:
                r.c.free_volume(vm.node, volid)
                raise
            old = d["file"]
            vm.config[disk] = vm.config[disk].replace(old, volid, 1)
            if r.flag("delete"):
                try:
                    r.c.free_volume(vm.node, old)
                except PVEError as exc:  # PVE warns and keeps it (a base its linked clones still use)
                    ctx.log(f"WARN: {exc.message}")
                    ctx.task.warnings += 1
            else:
                n = 0
                while f"unused{n}" in vm.config:
                    n += 1
                vm.config[f"unused{n}"] = old

    return r.task("qmmove", str(vm.vmid), work)
