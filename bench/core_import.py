"""How long `import hvkit` takes and what it pulls in (no vendor SDK may be among it)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CODE = (
    "import sys, time, json; before = set(sys.modules); t = time.perf_counter(); import hvkit; "
    "dt = time.perf_counter() - t; new = sorted(set(sys.modules) - before); "
    "print(json.dumps({'seconds': dt, 'modules': new}))"
)
BASE = (
    "import sys, time, json; t = time.perf_counter(); import attrs; "
    "print(json.dumps({'seconds': time.perf_counter() - t}))"
)
SDKS = {"pyVmomi", "libvirt", "proxmoxer", "winrm", "XenAPI", "requests"}


def run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-X", "frozen_modules=on", "-c", code], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    runs = [run(CODE) for _ in range(7)]
    base = [float(run(BASE)["seconds"]) for _ in range(7)]  # type: ignore[arg-type]
    seconds = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
    modules = list(runs[0]["modules"])  # type: ignore[call-overload]
    hvkit_modules = [m for m in modules if m.startswith("hvkit")]
    sdk = sorted(SDKS & {m.split(".")[0] for m in modules})
    print(
        f"import hvkit: {seconds * 1000:.1f} ms (median of 7); "
        f"import attrs alone: {statistics.median(base) * 1000:.1f} ms"
    )
    print(f"  ratio over importing its one dependency: {seconds / statistics.median(base):.2f}x")
    print(f"  modules pulled in: {len(modules)} ({len(hvkit_modules)} of hvkit's own); vendor SDKs: {sdk or 'none'}")


if __name__ == "__main__":
    main()
