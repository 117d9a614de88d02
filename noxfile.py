"""nox sessions: one per backend, plus lint, typing, docs and benchmarks. `nox -l` lists them."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typing", "core", "sim", "kvm", "vmware", "proxmox", "migration", "fleet", "docs"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install("-e", f".[{extras}]")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "hvkit", "tests", "bench", "scripts")


@nox.session
def typing(session: nox.Session) -> None:
    _install(session, "all,test")
    session.install("mypy")
    session.run("mypy")


@nox.session
def core(session: nox.Session) -> None:
    _install(session)
    session.run("pytest", "tests/core", *session.posargs)


@nox.session
def sim(session: nox.Session) -> None:
    _install(session)
    session.run("pytest", "tests/sim", *session.posargs)


@nox.session
def kvm(session: nox.Session) -> None:
    """Needs libvirtd (scripts/setup.d/20-kvm.sh starts it)."""
    _install(session, "kvm,test")
    session.run("pytest", "tests/kvm", *session.posargs)


@nox.session
def vmware(session: nox.Session) -> None:
    """Needs Go and Debian's govmomi sources to build vcsim (scripts/setup.d/30-vmware.sh)."""
    _install(session, "vmware,test")
    session.run("pytest", "tests/vmware", *session.posargs)


@nox.session
def proxmox(session: nox.Session) -> None:
    _install(session, "proxmox,test")
    session.run("pytest", "tests/proxmox", *session.posargs)


@nox.session
def migration(session: nox.Session) -> None:
    _install(session, "all,test")
    session.run("pytest", "tests/migration", *session.posargs)


@nox.session
def fleet(session: nox.Session) -> None:
    _install(session)
    session.run("pytest", "tests/fleet", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    _install(session, "all")
    session.install("mkdocs")
    session.run("python", "scripts/update_matrix.py", "--check")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks print figures and ratios; the backend ones need their services running."""
    _install(session, "all,test")
    for script in sorted(__import__("glob").glob("bench/*.py")):
        session.run("python", script, *session.posargs)
