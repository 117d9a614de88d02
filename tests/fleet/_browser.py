"""A headless Chromium driven over the DevTools protocol: load a page, collect console errors and the
requests it makes, read values out of the DOM, and take a screenshot."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@attrs.define
class Loaded:
    errors: list[str]  # console errors, uncaught exceptions, log entries of level error
    requests: list[str]  # every URL the page asked for
    value: Any  # what the expression evaluated to
    screenshot: Path


class _Cdp:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")


@contextmanager
def _browser() -> Iterator[str]:
    exe = chromium()
    assert exe is not None
    # Chromium's helper processes may still write into the profile after the browser exits
    with tempfile.TemporaryDirectory(prefix="hvkit-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the browser and its helpers end together
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            end = time.monotonic() + 30
            while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(port_file.read_text().splitlines()[0])
            yield f"http://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def load(page: Path, expression: str, screenshot: Path) -> Loaded:
    """Open ``page`` in a fresh headless Chromium, wait for it to load, evaluate ``expression``."""
    import websocket

    with _browser() as base:
        with urllib.request.urlopen(f"{base}/json/list", timeout=10) as r:
            targets = json.load(r)
        url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        try:
            cdp = _Cdp(ws)
            for domain in ("Runtime", "Log", "Page", "Network"):
                cdp.call(f"{domain}.enable")
            cdp.call("Page.navigate", url=page.resolve().as_uri())
            cdp.wait_event("Page.loadEventFired", 60)
            time.sleep(0.5)  # let the charts draw
            value = cdp.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")
            size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
            shot = cdp.call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            cdp.call("Runtime.evaluate", expression="1")  # drain events that came meanwhile
        finally:
            ws.close()
    errors, requests = [], []
    for e in cdp.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(json.dumps(params.get("args"))[:300])
        elif method == "Runtime.exceptionThrown":
            errors.append(json.dumps(params.get("exceptionDetails"))[:300])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(str(params["entry"].get("text"))[:300])
        elif method == "Network.requestWillBeSent":
            requests.append(str(params.get("request", {}).get("url")))
    return Loaded(errors, requests, value, screenshot)
