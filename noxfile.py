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
    _install(session, "test")
    session.install("import-linter")
    session.run("lint-imports")  # the layers and contracts in pyproject.toml [tool.importlinter]


@nox.session
def typing(session: nox.Session) -> None:
    _install(session, "all,test,solver,report")  # every import of hvkit, tests and bench resolves
    session.install("mypy")
    session.run("mypy")  # what pyproject's [tool.mypy] files lists: hvkit, tests and bench


# One test session per part: (session, extras to install, test folder, what it needs running).
TEST_SESSIONS = [
    ("core", "test", "tests/core", ""),
    ("sim", "test", "tests/sim", ""),
    ("kvm", "kvm,test", "tests/kvm", "libvirtd (scripts/setup.d/20-kvm.sh starts it)"),
    ("vmware", "vmware,test", "tests/vmware", "Go and Debian's govmomi sources to build vcsim"),
    ("proxmox", "proxmox,test", "tests/proxmox", ""),
    ("hyperv", "hyperv,test", "tests/hyperv", "qemu-img and samba (scripts/setup.d/50-hyperv.packages)"),
    ("xen", "xen,test", "tests/xen", "qemu-img; libvirtd and vcsim for the migration paths"),
    ("vbox", "test", "tests/vbox", "qemu-img; the test sshd and libvirtd (scripts/setup.d) for SSH and migration"),
    ("migration", "all,test", "tests/migration", "libvirtd, vcsim and the test sshd (scripts/setup.d)"),
    ("fleet", "all,test", "tests/fleet", ""),
    ("replication", "all,test", "tests/replication", "qemu-io; libvirtd and QEMU for the KVM paths (setup.d)"),
    ("reliability", "all,test", "tests/reliability", "qemu-img (scripts/setup.d)"),
    ("ansible", "all,test,ansible", "tests/ansible", "root, libvirtd, sshd, setup.d/70-ansible.sh"),
]


def _test_session(name: str, extras: str, folder: str, needs: str) -> None:
    def run(session: nox.Session) -> None:
        _install(session, extras)
        session.run("pytest", folder, *session.posargs)

    run.__doc__ = f"pytest {folder}" + (f"; needs {needs}" if needs else "")
    nox.session(name=name)(run)


for _args in TEST_SESSIONS:
    _test_session(*_args)


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
