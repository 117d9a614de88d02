"""The backend support matrix, generated from the capability declarations (README and docs use it)."""

from __future__ import annotations

from . import _registry
from .capabilities import DESCRIPTIONS, Capability

__all__ = ["backend_capabilities", "matrix_markdown"]


def backend_capabilities() -> dict[str, tuple[frozenset[Capability], dict[Capability, str]] | ImportError]:
    """One entry per driver class (aliases folded), keyed by its module name: capabilities and their notes."""
    seen: dict[str, str] = {}
    result: dict[str, tuple[frozenset[Capability], dict[Capability, str]] | ImportError] = {}
    for kind, found in _registry.available().items():
        target = _registry.known()[kind].target
        if target in seen:
            continue
        seen[target] = kind
        name = target.split(":", 1)[0].rsplit(".", 1)[-1]  # hvkit.backends.vmware:... -> vmware
        if isinstance(found, ImportError):
            result[name] = found
        else:
            result[name] = (frozenset(found.capabilities), dict(getattr(found, "capability_notes", {})))
    return result


def matrix_markdown() -> str:
    """A Markdown table: one row per capability, one column per backend ('yes', 'yes*' with a note, '-')."""
    backends = {k: v for k, v in backend_capabilities().items() if not isinstance(v, ImportError)}
    kinds = sorted(backends)
    lines = ["| capability | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    notes: list[str] = []
    for cap in Capability:
        cells = []
        for kind in kinds:
            caps, cap_notes = backends[kind]
            if cap not in caps:
                cells.append("-")
            elif cap in cap_notes:
                text = f"{kind}: {cap_notes[cap]}"
                if text not in notes:
                    notes.append(text)
                cells.append(f"yes[^{notes.index(text) + 1}]")
            else:
                cells.append("yes")
        lines.append(f"| `{cap.value}` {DESCRIPTIONS[cap]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"[^{i}]: {text}" for i, text in enumerate(notes, 1)]
    return "\n".join(lines).rstrip() + "\n"
