"""The simulated PVE API: storages, their content (volumes), uploads and tasks."""

from __future__ import annotations

import urllib.parse
from typing import Any

from ._request import Request, route
from ._values import file_checksum, image_info
from .state import PVEError
from .tasks import TaskContext


# -- storage -----------------------------------------------------------------------------------------
def _storage_entry(r: Request, sid: str) -> dict[str, Any]:
    st = r.c.storage(r.node, sid)
    used = r.c.used_bytes(r.node, st)
    return {
        "storage": st.id,
        "type": st.type,
        "content": ",".join(sorted(st.content)),
        "shared": 1 if st.shared else 0,
        "active": 1,
        "enabled": 1,
        "total": st.capacity,
        "used": used,
        "avail": st.capacity - used,
        "used_fraction": used / st.capacity,
        "format": st.formats[0],
        "formats": list(st.formats),
    }


@route("/nodes/{node}/storage", "GET")
def storage_list(r: Request) -> Any:
    r.c.check_node(r.node)
    out = [_storage_entry(r, sid) for sid, st in r.c.storages.items() if st.on(r.node or "")]
    if "content" in r.p:
        out = [e for e in out if set(r.p["content"].split(",")) & set(e["content"].split(","))]
    for e in out:
        e.pop("formats")
        e.pop("format")
    return out


@route("/nodes/{node}/storage/{storage}/status", "GET")
def storage_status(r: Request) -> Any:
    entry = _storage_entry(r, r.p["storage"])
    entry["format"] = [{f: 1 for f in entry.pop("formats")}, entry["format"]]
    return entry


@route("/nodes/{node}/storage/{storage}/content", "GET")
def content_list(r: Request) -> Any:
    st = r.c.storage(r.node, r.p["storage"])
    out = r.c.volumes(r.node, st)
    if "content" in r.p:
        out = [v for v in out if v["content"] == r.p["content"]]
    if "vmid" in r.p:
        out = [v for v in out if v.get("vmid") == int(r.p["vmid"])]
    return out


def _volid(r: Request) -> str:
    volume = r.p["volume"]
    return volume if ":" in volume else f"{r.p['storage']}:{volume}"


@route("/nodes/{node}/storage/{storage}/content", "POST")
def content_alloc(r: Request) -> Any:
    r.c.storage(r.node, r.p["storage"])
    vmid = int(r.p["vmid"])
    name = r.p["filename"]
    if not name.startswith(f"vm-{vmid}-") and not name.startswith(f"base-{vmid}-"):
        raise PVEError(500, f"illegal name '{name}' - should be 'vm-{vmid}-*'")
    fmt = r.p.get("format")
    st = r.c.storages[r.p["storage"]]
    if st.file_based and fmt is None and "." in name:
        fmt = name.rsplit(".", 1)[1]
    if st.file_based and not name.endswith(f".{fmt or st.formats[0]}"):
        name = f"{name}.{fmt or st.formats[0]}"
    size_text = r.p["size"]
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    size = int(float(size_text[:-1]) * units[size_text[-1]]) if size_text[-1:] in units else int(size_text) * 1024
    return r.c.alloc(r.node, st.id, vmid, size, fmt, name=name)


@route("/nodes/{node}/storage/{storage}/content/{volume}", "GET")
def content_get(r: Request) -> Any:
    volid = _volid(r)
    path = r.c.volume_path(r.node, volid)
    if not path.exists():
        raise PVEError(500, f"volume '{volid}' does not exist")
    info = image_info(path)
    return {
        "path": str(path),
        "size": info["virtual-size"],
        "used": info.get("actual-size", 0),
        "format": info["format"],
    }


@route("/nodes/{node}/storage/{storage}/content/{volume}", "DELETE")
def content_delete(r: Request) -> Any:
    volid = _volid(r)
    path = r.c.volume_path(r.node, volid)
    if not path.exists():
        raise PVEError(500, f"volume '{volid}' does not exist")
    with r.c.mu:
        for vm in r.c.vms.values():
            if vm.node == r.node or r.c.storages[volid.split(":")[0]].shared:
                for disk in r.c.vm_disks(vm).values():
                    if disk.get("file") == volid:
                        raise PVEError(500, f"unable to delete '{volid}' - volume is still in use (VM {vm.vmid})")

    def work(ctx: TaskContext) -> None:
        ctx.sleep(0.5)
        r.c.free_volume(r.node, volid)

    return r.task("imgdel", volid, work)


@route("/nodes/{node}/storage/{storage}/upload", "POST")
def upload(r: Request) -> Any:
    st = r.c.storage(r.node, r.p["storage"])
    content = r.p["content"]
    if content not in st.content:
        raise PVEError(500, f"storage '{st.id}' does not support '{content}' content")
    tmp = r.files.get("filename")
    if tmp is None:
        raise PVEError(
            400, "Parameter verification failed.", {"filename": "property is missing and it is not optional\n"}
        )
    filename = r.p["filename"]
    allowed = {
        "iso": (".iso", ".img"),
        "vztmpl": (".tar.gz", ".tar.xz", ".tar.zst"),
        "import": (".ova", ".qcow2", ".raw", ".vmdk", ".img"),
    }
    if not filename.endswith(allowed[content]) or "/" in filename:
        tmp.unlink(missing_ok=True)
        raise PVEError(500, f"invalid filename or wrong extension '{filename}'")
    target = r.c.storage_dir(st, r.node) / content / filename
    claimed = r.c.root.parent / "upload-work" / tmp.name  # the task outlives the request that brought the file
    claimed.parent.mkdir(exist_ok=True)
    tmp.replace(claimed)
    tmp = claimed

    def work(ctx: TaskContext) -> None:
        try:
            ctx.log(f"starting file import from: {tmp}")
            if "checksum" in r.p:
                algo = r.p.get("checksum-algorithm")
                if algo is None:
                    raise PVEError(500, "'checksum-algorithm' is required when 'checksum' is set")
                got = file_checksum(tmp, algo)
                if got.lower() != r.p["checksum"].lower():
                    raise PVEError(500, f"checksum mismatch: got '{got}' != expect '{r.p['checksum']}'")
                ctx.log("calculating checksum...OK, checksum verified")
            if content == "import" and not filename.endswith(".ova"):
                info = image_info(tmp)
                if info.get("backing-filename"):
                    raise PVEError(500, "image has a backing file, refusing to import")
            target.parent.mkdir(parents=True, exist_ok=True)
            ctx.sleep(0.5)
            tmp.replace(target)
            ctx.log(f"target file: {target}")
        finally:
            tmp.unlink(missing_ok=True)

    return r.task("imgcopy", "", work)


# -- tasks -------------------------------------------------------------------------------------------
def _task(r: Request) -> Any:
    r.c.check_node(r.node)
    task = r.c.runner.get(urllib.parse.unquote(r.p["upid"]))
    if task is None or task.node != r.node:
        raise PVEError(500, f"no such task '{r.p['upid']}'")
    return task


@route("/nodes/{node}/tasks/{upid}", "DELETE")
def task_stop(r: Request) -> Any:
    """Stop a running task: its worker ends at its next step and undoes its work, as PVE's does on SIGTERM."""
    _task(r).stop.set()
    return None


@route("/nodes/{node}/tasks/{upid}/status", "GET")
def task_status(r: Request) -> Any:
    return _task(r).status()


@route("/nodes/{node}/tasks/{upid}/log", "GET")
def task_log(r: Request) -> Any:
    task = _task(r)
    start = int(r.p.get("start", 0))
    limit = int(r.p.get("limit", 50))
    lines = list(task.log)
    return [{"n": i + 1, "t": line} for i, line in enumerate(lines) if start <= i < start + limit] or [
        {"n": 1, "t": "no content"}
    ]
