"""XAPI's dispatcher: method lookup, arity and type checks, sessions, generic accessors, tasks, events."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .model import NULL, Failure, XType, coerce, model, parse_type
from .pool import Pool, now

__all__ = ["API", "HANDLERS", "handler"]

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)
HANDLERS: dict[str, Handler] = {}  # "VM.start" -> fn(api, session, *args)
_NO_SESSION = {"session.login_with_password", "session.slave_local_login_with_password"}


def handler(name: str) -> Callable[[F], F]:
    def register(fn: F) -> F:
        HANDLERS[name] = fn
        return fn

    return register


class API:
    """One pool's API: ``call(method, params, via)`` returns a value or raises :class:`Failure`."""

    def __init__(self, pool: Pool, users: dict[str, str], *, task_delay: float, session_ttl: float) -> None:
        self.pool = pool
        self.store = pool.store
        self.users = users
        self.task_delay = task_delay
        self.session_ttl = session_ttl
        self.sessions: dict[str, dict[str, Any]] = {}  # ref -> {user, last}
        self.calls: list[str] = []
        self.errors_sent: list[list[str]] = []
        self._cancel: dict[str, threading.Event] = {}

    # -- entry point ----------------------------------------------------------------------------------
    def call(self, method: str, params: list[Any], via: str | None = None) -> Any:
        """Answer ``method``; ``via`` is the host whose listener took the call (default: the master)."""
        self.calls.append(method)
        try:
            return self._call(method, params, via is None or via == self.pool.master)
        except Failure as exc:
            self.errors_sent.append(exc.description)
            raise

    def _call(self, method: str, params: list[Any], via_master: bool) -> Any:
        if method == "system.listMethods":
            return self.method_names()
        if not via_master:
            raise Failure("HOST_IS_SLAVE", self.pool.addresses[self.pool.master])
        is_async = method.startswith("Async.")
        name = method[6:] if is_async else method
        cls, _, msg_name = name.partition(".")
        msg = model()["classes"].get(cls, {}).get("messages", {}).get(msg_name)
        if msg is None or (is_async and msg["implicit"]):
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        if name == "session.login_with_password":
            if not 2 <= len(params) <= 4:
                raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, 4, len(params))
            return self.login(str(params[0]), str(params[1]), str(params[2]) if len(params) > 2 else "")
        if len(params) != len(msg["params"]):
            raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, len(msg["params"]), len(params))
        args = [self._arg(parse_type(t), v, pname) for (t, pname), v in zip(msg["params"], params, strict=True)]
        session = ""
        if msg["params"] and msg["params"][0][0] == "session ref" and name not in _NO_SESSION:
            session = self.check_session(args[0])
            args = args[1:]
        fn = HANDLERS.get(name) or self._generic(cls, msg_name, msg)
        if is_async:
            return self.start_task(name, fn, session, args)
        with self.store.lock:
            return fn(self, session, *args)

    def method_names(self) -> list[str]:
        names = ["system.listMethods"]
        for cls, spec in model()["classes"].items():
            for msg_name, msg in spec["messages"].items():
                names.append(f"{cls}.{msg_name}")
                if not msg["implicit"]:
                    names.append(f"Async.{cls}.{msg_name}")
        return names

    def _arg(self, xt: XType, value: Any, name: str) -> Any:
        out = coerce(xt, value, name)
        if xt.form == "ref" and xt.name != "session" and out != NULL and not self.store.exists(xt.name, out):
            raise Failure("HANDLE_INVALID", xt.name, out)
        return out

    # -- sessions -------------------------------------------------------------------------------------
    def login(self, user: str, password: str, version: str) -> str:
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            raise Failure("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
        ref = f"OpaqueRef:{secrets.token_hex(16)}"
        with self.store.lock:
            self.sessions[ref] = {"user": user, "last": time.monotonic()}
            self.store.new(
                "session",
                {
                    "this_host": self.pool.master,
                    "this_user": NULL,
                    "last_active": now(),
                    "auth_user_name": user,
                    "originator": version,
                    "is_local_superuser": True,
                    "validation_time": now(),
                },
                ref=ref,
            )
        return ref

    def check_session(self, ref: str) -> str:
        found = self.sessions.get(ref)
        if found is None or time.monotonic() - found["last"] > self.session_ttl:
            if found is not None:
                self.logout(ref)
            raise Failure("SESSION_INVALID", ref)
        found["last"] = time.monotonic()
        return ref

    def logout(self, ref: str) -> None:
        with self.store.lock:
            if self.sessions.pop(ref, None) is not None and self.store.exists("session", ref):
                self.store.destroy("session", ref)

    def expire_sessions(self) -> None:
        """Forget every session, as a restarted xapi does (the next call gets SESSION_INVALID)."""
        for ref in list(self.sessions):
            self.logout(ref)

    # -- generic messages -------------------------------------------------------------------------------
    def _generic(self, cls: str, name: str, msg: dict[str, Any]) -> Handler:
        fields = model()["classes"][cls]["fields"]
        store = self.store
        if name == "get_record":
            return lambda api, s, ref: store.get(cls, ref)
        if name == "get_all":
            return lambda api, s: list(store.objects[cls])
        if name == "get_all_records":
            return lambda api, s: store.objects[cls]
        if name == "get_by_uuid":
            return lambda api, s, uuid: _by_uuid(store, cls, uuid)
        if name == "get_by_name_label":
            return lambda api, s, label: [r for r, rec in store.objects[cls].items() if rec["name_label"] == label]
        if name == "create":
            return lambda api, s, args: _create(store, cls, args)
        if name == "destroy":
            return lambda api, s, ref: store.destroy(cls, ref)
        for prefix, act in (("get_", "get"), ("set_", "set"), ("add_to_", "add_to"), ("remove_from_", "remove_from")):
            if name.startswith(prefix) and name[len(prefix) :] in fields:
                return _accessor(store, cls, name[len(prefix) :], act)
        for prefix, act in (("add_", "add"), ("remove_", "remove")):
            if name.startswith(prefix) and name[len(prefix) :] in fields:
                return _accessor(store, cls, name[len(prefix) :], act)

        def not_implemented(api: API, session: str, *args: Any) -> Any:
            raise Failure("NOT_IMPLEMENTED", f"{cls}.{name}")

        return not_implemented

    # -- tasks ------------------------------------------------------------------------------------------
    def start_task(self, name: str, fn: Handler, session: str, args: list[Any]) -> str:
        with self.store.lock:
            task = self.store.new(
                "task",
                {
                    "name_label": f"Async.{name}",
                    "status": "pending",
                    "progress": 0.0,
                    "created": now(),
                    "resident_on": self.pool.master,
                    "allowed_operations": ["cancel"],
                },
            )
        cancel = self._cancel[task] = threading.Event()
        result_type = model()["classes"][name.split(".")[0]]["messages"][name.split(".")[1]]["result"]

        def run() -> None:
            from .wire import xml_value

            for step in (0.25, 0.5, 0.75):
                if cancel.wait(self.task_delay):
                    break
                with self.store.lock:
                    if self.store.exists("task", task):
                        self.store.set("task", task, "progress", step)
            with self.store.lock:
                if not self.store.exists("task", task):
                    return
                if cancel.is_set():
                    self.store.update(
                        "task", task, status="cancelled", error_info=["TASK_CANCELLED", task], finished=now()
                    )
                    return
                try:
                    value = fn(self, session, *args)
                    result = "" if result_type == "void" else f"<value>{xml_value(value)}</value>"
                    self.store.update("task", task, status="success", progress=1.0, result=result, finished=now())
                except Failure as exc:
                    self.store.update("task", task, status="failure", error_info=exc.description, finished=now())
                except Exception as exc:  # a simulator bug: XAPI reports INTERNAL_ERROR
                    self.store.update(
                        "task", task, status="failure", error_info=["INTERNAL_ERROR", repr(exc)], finished=now()
                    )
                self.store.set("task", task, "allowed_operations", [])

        threading.Thread(target=run, daemon=True, name=f"xapi-sim-{name}").start()
        return task

    def cancel_task(self, task: str) -> None:
        status = self.store.get("task", task)["status"]
        if status != "pending":
            raise Failure("OPERATION_NOT_ALLOWED", f"task {task} is {status}")
        self.store.set("task", task, "status", "cancelling")
        event = self._cancel.get(task)
        if event is not None:
            event.set()


def _by_uuid(store: Any, cls: str, uuid: str) -> str:
    ref = store.by_uuid[cls].get(uuid)
    if ref is None:
        raise Failure("UUID_INVALID", cls, uuid)
    return str(ref)


def _create(store: Any, cls: str, args: dict[str, Any]) -> str:
    fields = model()["classes"][cls]["fields"]
    record: dict[str, Any] = {}
    for key, value in args.items():
        spec = fields.get(key)
        if spec is None or spec[1] == "RO/runtime":
            continue  # XAPI ignores unknown and runtime fields in a create record
        xt = parse_type(spec[0])
        record[key] = coerce(xt, value, f"{cls}.{key}")
        if xt.form == "ref" and record[key] != NULL and not store.exists(xt.name, record[key]):
            raise Failure("HANDLE_INVALID", xt.name, record[key])
    record.pop("uuid", None)
    return str(store.new(cls, record))


def _accessor(store: Any, cls: str, field: str, act: str) -> Handler:
    def get(api: API, s: str, ref: str) -> Any:
        return store.get(cls, ref)[field]

    def set_(api: API, s: str, ref: str, value: Any) -> None:
        store.set(cls, ref, field, value)

    def add_to(api: API, s: str, ref: str, key: str, value: Any) -> None:
        current = dict(store.get(cls, ref)[field])
        if key in current:
            raise Failure("MAP_DUPLICATE_KEY", cls, field, ref, key)
        current[key] = value
        store.set(cls, ref, field, current)

    def remove_from(api: API, s: str, ref: str, key: str) -> None:
        current = dict(store.get(cls, ref)[field])
        current.pop(key, None)
        store.set(cls, ref, field, current)

    def add(api: API, s: str, ref: str, value: Any) -> None:
        current = list(store.get(cls, ref)[field])
        if value not in current:
            store.set(cls, ref, field, [*current, value])

    def remove(api: API, s: str, ref: str, value: Any) -> None:
        store.set(cls, ref, field, [v for v in store.get(cls, ref)[field] if v != value])

    table: dict[str, Handler] = {
        "get": get,
        "set": set_,
        "add_to": add_to,
        "remove_from": remove_from,
        "add": add,
        "remove": remove,
    }
    return table[act]


# -- messages every client uses ------------------------------------------------------------------------------
@handler("session.logout")
def _logout(api: API, session: str) -> None:
    api.logout(session)


@handler("session.get_this_host")
def _this_host(api: API, session: str, ref: str) -> str:
    return api.pool.master


@handler("host.get_servertime")
def _servertime(api: API, session: str, host: str) -> Any:
    return now()


@handler("pool.designate_new_master")
def _designate_new_master(api: API, session: str, host: str) -> None:
    """The host becomes the master; xapi restarts on both, so every session ends."""
    pool = next(iter(api.store.objects["pool"]))
    api.store.set("pool", pool, "master", host)
    api.expire_sessions()


@handler("task.cancel")
def _task_cancel(api: API, session: str, task: str) -> None:
    api.cancel_task(task)


@handler("event.from")
def _event_from(api: API, session: str, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
    wanted = {c.lower().split("/")[0] for c in classes}
    if token == "":
        with api.store.lock:
            events = [
                {"id": "0", "timestamp": "0", "class": cls.lower(), "operation": "add", "ref": ref, "snapshot": rec}
                for cls, objects in api.store.objects.items()
                if "*" in wanted or cls.lower() in wanted
                for ref, rec in objects.items()
            ]
            return {"events": events, "valid_ref_counts": {}, "token": str(api.store.event_id)}
    try:
        since = int(token)
    except ValueError:
        raise Failure("INVALID_VALUE", "token", token) from None
    api.store.lock.release()  # event.from blocks; let other calls change things meanwhile
    try:
        events, latest = api.store.events_since(wanted, since, min(float(timeout), 60.0))
    finally:
        api.store.lock.acquire()
    return {"events": events, "valid_ref_counts": {}, "token": str(latest)}
