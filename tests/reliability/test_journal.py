"""Kill a migration (sim -> sim) at every journal record, torn or whole, and inside an import; then both the
resume and the rollback must hold.

A real process dies by SIGKILL (with every process it started: a crashed machine runs nothing on), after
writing the first N records of its journal, or halfway through record N (a torn write), or after record N
without its newline; or inside an import, after the target's image file exists but before the target has
registered it, or after the volume is registered but before its data is written. From each point the
resume must end with a verified migration (every disk's checksum equal on both sides, nothing doubled)
and the rollback must leave 0 orphans on the target (no VM, volume or image file) and the source as it
was. Each kill runs in a process forked from one that has imported hvkit already (seconds, not minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import pytest

import hvkit
from hvkit import migration
from hvkit.errors import InvalidSpec, InvalidState
from hvkit.migration import Journal

from ..migration.conftest import SourceVM, forget, make_source, sim_url
from ._orphans import sim_orphans

ROOT = Path(__file__).resolve().parents[2]
DISKS = ((4, "default", "qcow2"), (2, "fast", "raw"))  # MiB, pool, format: two small disks, two pools

# One process imports hvkit, then forks a child per kill point (a fork of a single-threaded process is safe).
# A command is a JSON line; the answer is a JSON line once the child (and its process group) is gone.
ZYGOTE = textwrap.dedent(
    """
    import json, os, signal, sys
    import hvkit, hvkit.migration, hvkit.backends.sim.backend
    from hvkit import migration
    from hvkit._images import _disk, _qemuimg
    from hvkit.migration._journal import Journal

    def child(cmd):
        mode, n, count = cmd["mode"], cmd["n"], [0]
        append = Journal.append

        def counted(self, record, *, durable=True):
            count[0] += 1
            if count[0] == n and mode in ("before", "torn", "no-newline"):
                line = json.dumps({"time": "2026-01-01T00:00:00.000+00:00", **record}, sort_keys=True)
                data = {"before": "", "torn": line[: len(line) // 2], "no-newline": line}[mode].encode()
                with open(self.path, "ab") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            append(self, record, durable=durable)

        Journal.append = counted
        pools = cmd["pools"]
        creates = [0]
        create = _qemuimg.create

        def creating(path, *args, **kw):  # the target's file exists, the target has not registered it
            create(path, *args, **kw)
            if mode == "file" and str(path).startswith(pools):
                creates[0] += 1
                if creates[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)

        _qemuimg.create = creating
        write_into = _disk.write_into
        writes = [0]

        def writing(image, path, *args, **kw):  # the volume is registered, its data not written, no id recorded
            if mode == "data" and str(path).startswith(pools):
                writes[0] += 1
                if writes[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)
            return write_into(image, path, *args, **kw)

        _disk.write_into = writing
        with hvkit.connect(cmd["src"]) as s, hvkit.connect(cmd["dst"]) as d:
            plan = migration.plan(s, "web-1", d, power_off=True)
            plan.run(start=True, journal_dir=cmd["journal"], parallel=1)
        with open(cmd["count"], "w") as out:
            out.write(str(count[0]))

    for raw in sys.stdin:
        cmd = json.loads(raw)
        pid = os.fork()
        if pid == 0:
            os.setsid()
            code = 0
            try:
                child(cmd)
            except BaseException as exc:
                sys.stderr.write(f"child: {exc!r}\\n")
                code = 3
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        try:
            os.killpg(pid, signal.SIGKILL)  # what the child started dies with it, as on a crashed machine
        except ProcessLookupError:
            pass
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        print(json.dumps({"signal": signum, "code": os.WEXITSTATUS(status) if not signum else None}), flush=True)
    """
)


class Zygote:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "HVKIT_MIGRATION_CRASH_AT"},
        )
        self.lock = threading.Lock()

    def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        assert line, "the zygote process died"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        stdin: IO[str] | None = self.proc.stdin
        if stdin is not None:
            stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


@attrs.define
class Figures:
    tried: int = 0
    resumed: int = 0
    rolled_back: int = 0
    completed: int = 0  # the kill came after the journal said "completed" (a whole last record)
    ran_again: int = 0  # killed before the plan record was whole: the same run started again
    orphans: list[str] = attrs.field(factory=list)
    failures: list[str] = attrs.field(factory=list)


FIGURES: dict[str, Figures] = {}


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not FIGURES:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        _write_figures(reporter)


def _write_figures(reporter: Any) -> None:
    reporter.write_line("")
    reporter.write_line("kill-and-resume of migrations (sim -> sim, 2 disks):")
    total = Figures()
    for mode, f in FIGURES.items():
        reporter.write_line(
            f"  {mode:<11} points tried {f.tried:3}, resumed {f.resumed:3}, rolled back {f.rolled_back:3}, "
            f"completed before the kill {f.completed}, ran again {f.ran_again}, orphans {len(f.orphans)}, "
            f"failures {len(f.failures)}"
        )
        total.tried += f.tried
        total.resumed += f.resumed
        total.rolled_back += f.rolled_back
        total.completed += f.completed
        total.ran_again += f.ran_again
        total.orphans += f.orphans
        total.failures += f.failures
    reporter.write_line(
        f"  {'all':<11} points tried {total.tried:3}, resumed {total.resumed:3}, rolled back {total.rolled_back:3}, "
        f"completed before the kill {total.completed}, ran again {total.ran_again}, orphans {len(total.orphans)}, "
        f"failures {len(total.failures)}"
    )


@attrs.frozen
class Point:
    root: Path
    src: str
    dst: str
    names: tuple[str, str]

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def state(self) -> Path:
        return self.root / "state"


def new_point(base: Path) -> tuple[Point, SourceVM, Path]:
    """A source VM in a sim world kept on disk (``state_dir``), and a copy of that world to start each kill from."""
    tag = uuid.uuid4().hex[:6]
    root = base / "point"
    names = (f"s{tag}", f"d{tag}")
    point = Point(root, sim_url(names[0], state_dir=root / "state"), sim_url(names[1], state_dir=root / "state"), names)
    with hvkit.connect(point.src) as src:
        source = make_source(src, root, disks=DISKS, running=True)
    forget(*names)
    template = base / "template"
    shutil.copytree(root, template, symlinks=True)
    return point, source, template


def reset(point: Point, template: Path) -> None:
    """Put the point's folder back as ``template`` holds it (at the same path: the worlds name their files)."""
    forget(*point.names)
    shutil.rmtree(point.root, ignore_errors=True)
    shutil.copytree(template, point.root, symlinks=True)


def kill(zygote: Zygote, point: Point, mode: str, n: int) -> bool:
    """Run the migration in a child that dies at point ``n`` of ``mode``; False: it finished (no such point)."""
    pools = str(point.state / point.names[1] / "pools")
    count = point.root / "count"
    answer = zygote.run({"mode": mode, "n": n, "src": point.src, "dst": point.dst, "journal": str(point.journal),
                         "pools": pools, "count": str(count)})  # fmt: skip
    if answer["signal"] == 0:
        assert answer["code"] == 0, f"the migration failed without a kill ({mode} {n})"
        return False
    assert answer["signal"] == signal.SIGKILL
    return True


def check_source(src: hvkit.Hypervisor, source: SourceVM, tmp: Path, running: bool) -> list[str]:
    """The source as it was: the same disks, each image file byte for byte as the template keeps it."""
    problems = []
    vm = src.vms.get("web-1")
    if sorted(d.volume or "" for d in vm.disks) != sorted(d.volume or "" for d in source.vm.disks):
        problems.append(f"the source VM's disks changed: {vm.disks}")
    if len(src.volumes.list()) != len(source.vm.disks):
        problems.append("the source's volumes changed")
    root = tmp / "point"
    for disk in vm.disks:
        path = Path(str(disk.path))
        if path.read_bytes() != (tmp / "template" / path.relative_to(root)).read_bytes():
            problems.append(f"the source disk {disk.name} changed")
    want = hvkit.PowerState.RUNNING if running else hvkit.PowerState.STOPPED
    if vm.power_state is not want:
        problems.append(f"the source VM is {vm.power_state.value}, not {want.value}")
    return problems


def try_rollback(point: Point, source: SourceVM, tmp: Path, figures: Figures, label: str) -> None:
    with hvkit.connect(point.src) as src, hvkit.connect(point.dst) as dst:
        try:
            migration.rollback(point.journal, src, dst)
        except InvalidState as exc:
            if "completed" not in str(exc):
                figures.failures.append(f"{label} rollback: {exc}")
            return
        except Exception as exc:  # counted and reported by the caller
            figures.failures.append(f"{label} rollback: {exc!r}")
            return
        orphans = sim_orphans(dst, set())
        figures.orphans += [f"{label} rollback: {o}" for o in orphans]
        problems = check_source(src, source, tmp, running=True)
        if Journal.open(point.journal).current_status != "rolled-back":
            problems.append("the journal does not say rolled-back")
        if point.journal.joinpath("staging").exists():
            problems.append("staging files stayed")
        figures.failures += [f"{label} rollback: {p}" for p in problems]
        if not orphans and not problems:
            figures.rolled_back += 1


def try_resume(point: Point, source: SourceVM, tmp: Path, figures: Figures, label: str) -> None:
    with hvkit.connect(point.src) as src, hvkit.connect(point.dst) as dst:
        completed = Journal.open(point.journal, repair=False).current_status == "completed"
        if not completed:  # (else a whole "completed" record without its newline: the run had finished)
            try:
                result = migration.resume(point.journal, src, dst)
            except Exception as exc:  # counted and reported by the caller
                figures.failures.append(f"{label} resume: {exc!r}")
                return
            if not result.verified or [d.target_checksum for d in result.disks] != source.checksums:
                figures.failures.append(f"{label} resume: not verified")
                return
        vm = dst.vms.get("web-1")
        orphans = sim_orphans(dst, {vm.id})
        figures.orphans += [f"{label} resume: {o}" for o in orphans]
        problems = check_source(src, source, tmp, running=False)
        if vm.power_state is not hvkit.PowerState.RUNNING or len(vm.disks) != len(DISKS):
            problems.append(f"the target VM is {vm.power_state.value} with {len(vm.disks)} disks")
        if len(dst.volumes.list()) != len(DISKS):
            problems.append(f"the target holds {len(dst.volumes.list())} volumes")
        figures.failures += [f"{label} resume: {p}" for p in problems]
        if not orphans and not problems:
            if completed:
                figures.completed += 1
            else:
                figures.resumed += 1


def run_again(point: Point, source: SourceVM, tmp: Path, figures: Figures, label: str) -> None:
    """Killed before the plan record was whole: nothing began; the same run (same journal folder) starts again."""
    with hvkit.connect(point.src) as src, hvkit.connect(point.dst) as dst:
        problems = check_source(src, source, tmp, running=True)
        problems += sim_orphans(dst, set())
        try:
            result = migration.plan(src, "web-1", dst, power_off=True).run(journal_dir=point.journal, parallel=1)
        except Exception as exc:  # counted and reported by the caller
            problems.append(repr(exc))
        else:
            if [d.target_checksum for d in result.disks] != source.checksums:
                problems.append("not verified")
    forget(*point.names)
    figures.failures += [f"{label} run again: {p}" for p in problems]
    if not problems:
        figures.ran_again += 1


def both_ways(point: Point, source: SourceVM, tmp: Path, figures: Figures, label: str) -> None:
    """Roll back from the kill, then put everything back as the kill left it and resume from there."""
    saved = tmp / "saved"
    shutil.copytree(point.root, saved, symlinks=True)
    try_rollback(point, source, tmp, figures, label)
    reset(point, saved)
    shutil.rmtree(saved)
    try_resume(point, source, tmp, figures, label)
    forget(*point.names)


# -- every journal record: before it, torn, whole without its newline ------------------------------------------
@pytest.mark.parametrize("mode", ["before", "torn", "no-newline"])
def test_kill_at_every_journal_record(zygote: Zygote, tmp_path: Path, mode: str) -> None:
    figures = FIGURES.setdefault(mode, Figures())
    point, source, template = new_point(tmp_path)
    reset(point, template)
    assert not kill(zygote, point, "none", 0)  # a whole run: how many records it writes
    total = int((point.root / "count").read_text())
    assert total >= 20, f"only {total} journal records"  # plan, status, ~11 steps x begin and done, completed
    # a whole record without its newline reads as the record: every third one (and the first and last) suffices
    points = range(1, total + 1) if mode != "no-newline" else sorted({1, total, *range(2, total, 3)})
    for n in points:
        label = f"{mode} record {n}"
        reset(point, template)
        assert kill(zygote, point, mode, n), f"the run did not reach record {n}"
        figures.tried += 1
        if n == 1 and mode != "no-newline":  # no whole plan record: nothing began, the same run starts again
            run_again(point, source, tmp_path, figures, label)
        else:
            both_ways(point, source, tmp_path, figures, label)
    assert figures.orphans == [] and figures.failures == [], "\n".join(figures.orphans + figures.failures)
    again = 1 if mode != "no-newline" else 0
    assert figures.resumed + figures.completed == figures.rolled_back + figures.completed == figures.tried - again
    assert figures.ran_again == again


@pytest.mark.parametrize("mode", ["file", "data"])
def test_kill_inside_an_import(zygote: Zygote, tmp_path: Path, mode: str) -> None:
    """``file``: the target's image file exists, the target has not registered it (the journal has no volume id);
    ``data``: the volume is registered and empty. Each disk in turn."""
    figures = FIGURES.setdefault(f"import-{mode}", Figures())
    point, source, template = new_point(tmp_path)
    for n in (1, 2):
        reset(point, template)
        assert kill(zygote, point, mode, n), f"no import {mode} point {n}"
        figures.tried += 1
        pools = point.state / point.names[1] / "pools"
        files = [p for p in pools.rglob("*") if p.is_file()]
        assert files, "the kill left no file in the target pool: the point is not inside the import"
        both_ways(point, source, tmp_path, figures, f"import {mode} disk {n}")
    assert figures.orphans == [] and figures.failures == [], "\n".join(figures.orphans + figures.failures)
    assert figures.resumed == figures.rolled_back == figures.tried == 2


# -- the journal file itself ------------------------------------------------------------------------------------
def new_journal(tmp_path: Path) -> Journal:
    journal = Journal.create({"name": "x"}, directory=tmp_path / "j")
    journal.begin("disk0.export")
    return journal


def test_a_torn_tail_is_cut_off_on_open_and_never_appended_to(tmp_path: Path) -> None:
    journal = new_journal(tmp_path)
    good = journal.path.read_bytes()
    with journal.path.open("ab") as out:
        out.write(b'{"kind": "step", "state": "do')
    again = Journal.open(journal.dir)
    assert journal.path.read_bytes() == good  # cut off
    assert [r.get("step") for r in again.records] == [None, None, "disk0.export"]
    assert again.repairs and "torn" in again.repairs[0]
    again.done("disk0.export")
    again.begin("disk0.checksum")
    third = Journal.open(journal.dir)
    assert [(r.get("step"), r.get("state")) for r in third.records[2:]] == [
        ("disk0.export", "begin"),
        ("disk0.export", "done"),
        ("disk0.checksum", "begin"),
    ]
    assert third.repairs == []


def test_a_whole_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    journal = new_journal(tmp_path)
    line = json.dumps({"kind": "step", "step": "disk0.export", "state": "done", "path": "p"}, sort_keys=True)
    with journal.path.open("ab") as out:
        out.write(line.encode())
    again = Journal.open(journal.dir)
    assert again.state("disk0.export") == ("done", {"path": "p"})
    assert journal.path.read_bytes().endswith(line.encode() + b"\n")
    again.begin("disk0.checksum")
    assert len(Journal.open(journal.dir).records) == 5


def test_appending_after_someone_tore_the_tail_starts_a_new_line(tmp_path: Path) -> None:
    """The newline guard: a writer holding the journal open still never appends onto a torn line."""
    journal = new_journal(tmp_path)
    with journal.path.open("ab") as out:
        out.write(b'{"kind": "st')
    journal.done("disk0.export")
    assert [r.get("state") for r in Journal.open(journal.dir).records[2:]] == ["begin", "done"]


def test_zero_bytes_past_the_last_record_are_cut_off(tmp_path: Path) -> None:
    journal = new_journal(tmp_path)
    with journal.path.open("ab") as out:
        out.write(b"\x00" * 4096)
    assert len(Journal.open(journal.dir).records) == 3
    assert journal.path.read_bytes().endswith(b"}\n")


def test_repair_false_changes_nothing(tmp_path: Path) -> None:
    journal = new_journal(tmp_path)
    with journal.path.open("ab") as out:
        out.write(b'{"kind": "st')
    before = journal.path.read_bytes()
    assert len(Journal.open(journal.dir, repair=False).records) == 3
    assert journal.path.read_bytes() == before


def test_a_journal_an_older_release_damaged_is_read_again(tmp_path: Path) -> None:
    """Releases before the newline guard appended onto a torn line: the whole record behind it is recovered."""
    journal = new_journal(tmp_path)
    whole = json.dumps({"kind": "step", "step": "disk0.export", "state": "done", "nested": {"a": '{"x'}})
    with journal.path.open("ab") as out:
        out.write(b'{"kind": "step", "nested": {"a": 1}, "sta' + whole.encode() + b"\n")
    journal.append({"kind": "status", "status": "resumed"})
    again = Journal.open(journal.dir)
    assert again.state("disk0.export")[0] == "done" and again.current_status == "resumed"
    assert "torn record" in again.repairs[0]


def test_a_damaged_line_in_the_middle_is_refused(tmp_path: Path) -> None:
    journal = new_journal(tmp_path)
    with journal.path.open("ab") as out:
        out.write(b"garbage\n")
    journal.done("disk0.export")
    with pytest.raises(InvalidSpec, match="damaged"):
        Journal.open(journal.dir)


def test_one_process_at_a_time(tmp_path: Path) -> None:
    journal = new_journal(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hvkit.migration import Journal\n"
         "j = Journal.open(sys.argv[1], lock=True); print('locked', flush=True); time.sleep(30)", str(journal.dir)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(InvalidState, match="another process"):
            Journal.open(journal.dir, lock=True)
    finally:
        holder.kill()
        holder.wait()
    Journal.open(journal.dir, lock=True).release()  # a killed holder's lock is gone with it


def test_the_import_target_is_recorded_before_the_import_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The begin record of an import names the pool, the exact volume names and the image paths, and what
    of them was there before; a file of that name someone else left is recorded as theirs and kept."""
    monkeypatch.setenv("HVKIT_MIGRATION_DIR", str(tmp_path / "journals"))
    names = (f"s{uuid.uuid4().hex[:6]}", f"d{uuid.uuid4().hex[:6]}")
    try:
        with hvkit.connect(sim_url(names[0])) as src, hvkit.connect(sim_url(names[1])) as dst:
            make_source(src, tmp_path, disks=((2, "default", "qcow2"),))
            pool_dir = Path(str(dst.pools.get("default").extra["path"]))
            stray = pool_dir / "web-1-disk0"  # not a registered volume: someone else's file
            stray.write_bytes(b"not ours")
            result = migration.plan(src, "web-1", dst).run()
            begin = next(
                r for r in Journal.open(result.journal).steps() if r["step"] == "disk0.import" and r["state"] == "begin"
            )
            target = begin["target"]
            assert target["pool"] == "default"
            assert "web-1-disk0.qcow2" in target["names"]
            assert str(pool_dir / "web-1-disk0.qcow2") in target["paths"]
            assert target["present"] == [str(stray)]
            assert stray.read_bytes() == b"not ours"
    finally:
        forget(*names)
