"""The XAPI connection: login (following HOST_IS_SLAVE once), calls with one re-login on SESSION_INVALID,
Async tasks followed through the kit's waiting helper, TLS and timeouts on every request."""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import urllib.parse
import xmlrpc.client
from typing import Any

from ...driver import ConnectOptions, Task, TaskInfo, wait_for
from ...errors import AuthenticationError, ConnectionError, HvkitError, InvalidSpec
from ...models import TaskState
from ._errors import from_description, translate

__all__ = ["NULL", "XapiSession", "XapiTaskSource"]

log = logging.getLogger("hvkit.xen")
NULL = "OpaqueRef:NULL"
DEFAULT_PORT = 443


class _RedactSecrets(logging.Filter):
    """Drops the password and session references from records of XenAPI's and xmlrpc's loggers."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for secret in self.secrets:
            if secret and secret in text:
                record.msg, record.args = text.replace(secret, "***"), None
                text = record.msg
        return True


class _Transport(xmlrpc.client.SafeTransport):
    """HTTPS with the caller's TLS context and a timeout on every request (xmlrpc has none)."""

    def __init__(self, context: ssl.SSLContext | None, timeout: float, plain: bool = False) -> None:
        super().__init__(context=context)
        self._context = context
        self._timeout = timeout
        self._plain = plain
        self.requests = 0

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:  # or HTTP, for xen+http://
        cached: Any = self._connection[1] if self._connection and host == self._connection[0] else None
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        chost, self._extra_headers, _x509 = self.get_host_info(host)
        conn: Any
        if self._plain:
            conn = http.client.HTTPConnection(chost, timeout=self._timeout)
        else:
            conn = http.client.HTTPSConnection(chost, timeout=self._timeout, context=self._context)
        self._connection = host, conn
        return conn  # type: ignore[no-any-return]

    def request(self, host: Any, handler: Any, request_body: Any, verbose: bool = False) -> Any:
        self.requests += 1
        return super().request(host, handler, request_body, verbose)


class XapiSession:
    """One logged-in XAPI session on the pool master; ``call`` and ``run`` are what the areas use."""

    def __init__(self, options: ConnectOptions) -> None:
        url = options.url
        if not url.host:
            raise InvalidSpec("a xen URL names the pool master: xen://user@pool-master[:port]")
        self.options = options
        self.host = url.host
        self.port = url.port or DEFAULT_PORT
        self.scheme = "http" if url.transport == "http" else "https"
        self.username = options.username or "root"
        self.timeout = options.timeout
        self._password = options.password or ""
        self._lock = threading.Lock()
        self._xen: Any = None
        self._transport: _Transport | None = None
        self.handle = ""
        self.version = ""
        self.redirected_from: str | None = None
        self.http_requests = 0  # GETs through the HTTP handlers (``get``)
        self._filter = _RedactSecrets([self._password])
        for name in ("XenAPI", "xmlrpc", "urllib3"):
            logging.getLogger(name).addFilter(self._filter)

    # -- TLS -------------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext | None:
        if self.scheme == "http":
            return None
        if not self.options.verify_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            return ssl.create_default_context(cafile=self.options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionError(f"cannot read the CA file {self.options.ca_file}: {exc}") from exc

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    # -- login ------------------------------------------------------------------------------------------
    def connect(self) -> None:
        if not self._password:
            raise AuthenticationError("XAPI needs a password (in the URL, password=..., or HVKIT_XEN_PASSWORD)")
        import XenAPI

        try:
            self._login(XenAPI)
        except ConnectionError as exc:
            cause = exc.__cause__
            if getattr(exc, "xapi_code", "") != "HOST_IS_SLAVE" or not isinstance(cause, XenAPI.Failure):
                raise
            master = str(cause.details[1])
            log.debug("%s is a pool member; following HOST_IS_SLAVE to the pool master %s", self.host, master)
            self.redirected_from, self.host = self.host, master
            self._login(XenAPI)

    def _login(self, xenapi: Any) -> None:
        with translate("login", self.options.ca_file):
            self._transport = _Transport(self.ssl_context(), self.timeout, plain=self.scheme == "http")
            self._xen = xenapi.Session(self.base_url, transport=self._transport)
            result = getattr(self._xen, "session.login_with_password")(self.username, self._password, "2.21", "hvkit")
            self.handle = _value(result)
            self._filter.secrets = [self._password, self.handle]

    def _drop_filter(self) -> None:
        for name in ("XenAPI", "xmlrpc", "urllib3"):
            logging.getLogger(name).removeFilter(self._filter)

    def close(self) -> None:
        if self._xen is None or not self.handle:
            self._drop_filter()
            return
        try:
            with translate("logout"):
                getattr(self._xen, "session.logout")(self.handle)
        except HvkitError as exc:
            log.debug("XAPI logout failed: %s", exc)
        finally:
            self.handle = ""
            if self._transport is not None:
                self._transport.close()
            self._drop_filter()

    @property
    def requests(self) -> int:
        return self._transport.requests if self._transport is not None else 0

    # -- calls -------------------------------------------------------------------------------------------
    def call(self, method: str, *args: Any) -> Any:
        """``method`` (e.g. ``"VM.start"``) with the session first.

        Once per call: a re-login when the session expired (SESSION_INVALID), or at the new master when
        this host answers HOST_IS_SLAVE (the pool's master moved).
        """
        import XenAPI

        if self._xen is None:
            raise ConnectionError("the XAPI connection is closed")
        with translate(method, self.options.ca_file):
            for attempt in (1, 2):
                with self._lock:
                    handle = self.handle
                    result = getattr(self._xen, method)(handle, *args)
                details = _failure(result)
                if details and details[0] == "SESSION_INVALID" and attempt == 1:
                    log.info("XAPI session expired; logging in again")
                    with self._lock:
                        if self.handle == handle:
                            self._login(XenAPI)
                    continue
                if details and details[0] == "HOST_IS_SLAVE" and len(details) > 1 and attempt == 1:
                    with self._lock:  # the pool has a new master (designate_new_master, HA): follow it once
                        if self.handle == handle:
                            log.debug("%s is no longer the pool master; following HOST_IS_SLAVE to %s", self.host,
                                      details[1])  # fmt: skip
                            self.host = str(details[1])
                            self._login(XenAPI)
                    continue
                if details:
                    raise XenAPI.Failure(details)
                return result["Value"]
        raise ConnectionError(f"{method}: XAPI refused the call again after logging in again")

    def start(self, method: str, *args: Any) -> str:
        """Start ``Async.<method>``; return the task reference."""
        return str(self.call(f"Async.{method}", *args))

    def task(self, operation: str, target: str, method: str, *args: Any, result: Any = None) -> Task:
        """Start ``Async.<method>`` and follow it as a Task (its result: ``result(value)`` or the value)."""
        ref = self.start(method, *args)
        return Task(id=ref, operation=operation, target=target, source=XapiTaskSource(self, ref, method, result))

    def run(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Start ``Async.<method>`` and wait for it here; cancel the XAPI task when ``timeout`` passes."""
        ref = self.start(method, *args)
        source = XapiTaskSource(self, ref, method, None)
        try:
            info = wait_for(source.poll, timeout=timeout, what=method)
        except HvkitError:
            try:
                source.cancel()
            except HvkitError as exc:
                log.debug("cancelling %s failed: %s", method, exc)
            raise
        if info.state is TaskState.SUCCESS:
            return info.result
        raise info.error or HvkitError(f"{method} ended {info.state.value}")

    # -- HTTP handlers (disk import / export) -------------------------------------------------------------
    def http(self, method: str, path: str, params: dict[str, str], timeout: float | None = None) -> Any:
        """An HTTP(S) connection to the master with ``session_id`` added; returns (connection, path+query)."""
        query = urllib.parse.urlencode({"session_id": self.handle, **params})
        conn: http.client.HTTPConnection
        if self.scheme == "http":
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        else:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout or self.timeout, context=self.ssl_context()
            )
        return conn, f"{path}?{query}"

    def get(self, path: str, params: dict[str, str], *, host: str | None = None, limit: int = 64 << 20) -> bytes:
        """The body of ``GET path`` on ``host`` (default: the master), TLS and timeout as for the calls.

        A session that expired (401/403) is renewed through one cheap call and the request sent once more.
        """
        for attempt in (1, 2):
            conn, target = self.http("GET", path, params)
            if host is not None:
                conn.host = host.strip("[]")
            self.http_requests += 1
            try:
                conn.request("GET", target)
                resp = conn.getresponse()
                body = resp.read(limit + 1)
            except (OSError, http.client.HTTPException) as exc:
                raise ConnectionError(f"GET {path} on {conn.host}: {exc}") from exc
            finally:
                conn.close()
            if resp.status in (401, 403) and attempt == 1:
                self.call("pool.get_all")  # logs in again when the session expired
                continue
            if resp.status != 200:
                raise ConnectionError(f"GET {path} on {conn.host}: HTTP {resp.status} {resp.reason}")
            if len(body) > limit:
                raise ConnectionError(f"GET {path} on {conn.host}: the answer exceeds {limit} bytes")
            return bytes(body)
        raise ConnectionError(f"GET {path}: refused again after logging in again")


def _failure(result: Any) -> list[Any] | None:
    if not isinstance(result, dict) or "Status" not in result:
        raise ConnectionError("XAPI answered without a Status")
    if result["Status"] == "Success":
        return None
    return list(result.get("ErrorDescription") or ["UNKNOWN"])


def _value(result: Any) -> str:
    import XenAPI

    details = _failure(result)
    if details:
        raise XenAPI.Failure(details)
    return str(result["Value"])


def parse_task_result(text: str) -> Any:
    """A task's result: XAPI keeps it as one XML-RPC ``<value>`` in a string."""
    if not text:
        return None
    params, _ = xmlrpc.client.loads(f"<methodResponse><params><param>{text}</param></params></methodResponse>")
    return params[0]


class XapiTaskSource:
    """Follows one XAPI task: status and progress from ``task.get_record``; cancel is ``task.cancel``."""

    def __init__(self, session: XapiSession, ref: str, what: str, result: Any) -> None:
        self._s = session
        self.ref = ref
        self._what = what
        self._result = result
        self._final: TaskInfo | None = None

    def poll(self) -> TaskInfo:
        if self._final is not None:
            return self._final
        rec = self._s.call("task.get_record", self.ref)
        status = rec["status"]
        progress = int(float(rec.get("progress", 0)) * 100)
        if status in ("pending", "cancelling"):
            return TaskInfo(TaskState.RUNNING, min(progress, 99), self._what)
        if status == "success":
            value = parse_task_result(str(rec.get("result", "")))
            try:
                result = self._result(value) if self._result is not None else value
                info = TaskInfo(TaskState.SUCCESS, 100, result=result)
            except HvkitError as exc:
                info = TaskInfo(TaskState.ERROR, progress, str(exc), error=exc)
        elif status == "cancelled":
            err = from_description(list(rec.get("error_info") or ["TASK_CANCELLED", self.ref]), self._what)
            info = TaskInfo(TaskState.CANCELLED, progress, str(err), error=err)
        else:
            err = from_description(list(rec.get("error_info") or ["INTERNAL_ERROR"]), self._what)
            info = TaskInfo(TaskState.ERROR, progress, str(err), error=err)
        self._final = info
        try:
            self._s.call("task.destroy", self.ref)
        except HvkitError as exc:
            log.debug("task.destroy %s: %s", self.ref, exc)
        return info

    def cancel(self) -> None:
        self._s.call("task.cancel", self.ref)
