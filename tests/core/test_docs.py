"""README and docs agree with the code; the documented CLI and set-up commands exist."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest

import hvkit
from hvkit import DiskSpec, NicSpec, VMSpec
from hvkit._matrix import backend_capabilities
from tests.readme_example import DocBlock, check_output, doc_blocks, run_block, run_readme_example

ROOT = Path(__file__).resolve().parents[2]


def test_support_matrix_matches_the_code() -> None:
    missing = [k for k, v in backend_capabilities().items() if isinstance(v, ImportError)]
    if missing:
        pytest.skip(f"backends not installed here: {missing}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update_matrix.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_readme_gives_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up on a fresh Debian/Ubuntu machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^    (\S.*)$", section, re.MULTILINE)
    assert commands == ["bash scripts/demo.sh", "bash scripts/test-all.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test-all.sh" in ci
    for script in ("scripts/demo.sh", "scripts/test-all.sh"):
        assert (ROOT / script).is_file()
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_no_machine_paths_in_the_project() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "tests/core/test_docs.py":  # this file names the patterns
            continue
        text_file = path.suffix in {".py", ".md", ".sh", ".toml", ".yml", ".go", ".packages"} and path.is_file()
        if text_file and re.search(r"/work/main|/root/|/tmp/hvkit", path.read_text(errors="ignore")):
            offenders.append(name)
    assert offenders == []


# -- every code block of README.md and docs/ runs (or is checked against the code) ----------------------------------
# A block's kind comes from its fence language and an optional marker on the line above it:
#   (python, no marker)            runs here on sim: hypervisor URLs become fresh sim:// worlds
#   (toml, no marker)              parses
#   <!-- docs-test: kvm|vmware|proxmox -->   needs that service: runs in that backend's suite (tests/<b>/test_readme.py)
#   <!-- docs-test: signature NAME -->       the parameters of NAME, e.g. hvkit.connect
#   <!-- docs-test: cli -->        every `hvkit ...` line: each --flag is in that command's --help
#   <!-- docs-test: errors -->     the hvkit.errors tree: every class exists under the class it is drawn under
#   <!-- docs-test: output -->     shown output (a benchmark table): not run
# Any other block fails: an example that cannot run is a bug.
BACKEND_SUITES = {"kvm", "vmware", "proxmox"}
WEB_VMS = ("web-1", "web-2", "web", "db")


def _blocks() -> list[DocBlock]:
    return doc_blocks()


def _populate(url: str) -> None:
    """A named sim world as the docs' examples assume it: stopped VMs web-1, web-2, web and db, tagged prod."""
    with hvkit.connect(url) as hv:
        names = {v.name for v in hv.vms.list()}
        for name in WEB_VMS:
            if name not in names:
                spec = VMSpec(name=name, memory_mib=256, disks=[DiskSpec(size_gib=0.01)], nics=[NicSpec("default")])
                hv.vms.create(attrs.evolve(spec, tags=frozenset({"prod"})))


@pytest.mark.parametrize("block", _blocks(), ids=lambda b: b.where)
def test_docs_block(block: DocBlock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kind, *args = block.marker.split() or [""]
    if kind in BACKEND_SUITES:
        compile(block.code, block.where, "exec")  # runs in that backend's suite; here: it is Python
        suite = ROOT / "tests" / kind / "test_readme.py"
        assert f'doc_blocks("{kind}")' in suite.read_text(), f"{suite} does not run the docs' {kind} blocks"
    elif kind == "signature":
        _check_signature(block, args[0])
    elif kind == "cli":
        _check_cli(block)
    elif kind == "errors":
        _check_error_tree(block)
    elif kind == "output":
        assert block.lang == "", f"{block.where}: only plain text blocks are output"
    elif kind == "" and block.lang == "toml":
        tomllib.loads(block.code)
    elif kind == "" and block.lang == "python":
        _run_on_sim(block, monkeypatch, tmp_path)
    elif kind == "" and block.lang == "yaml":
        _check_ansible_yaml(block)
    elif kind == "foreign" and block.lang == "yaml":  # another project's example, shown to compare: valid YAML
        assert pytest.importorskip("yaml").safe_load(block.code), f"{block.where}: empty example"
        assert COLLECTION not in block.code, f"{block.where}: an example of this collection is checked, not foreign"
    else:
        pytest.fail(f"{block.where}: a ```{block.lang} block with marker {block.marker!r} is not run by any test")


COLLECTION = "hvkit.hypervisor."
_TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")


@functools.cache
def _plugin_options(plugin_type: str, name: str) -> frozenset[str]:
    """The options of a plugin of the collection, as Ansible's own doc loader merges them (fragments included)."""
    ansible_doc = Path(sys.executable).with_name("ansible-doc")
    if not ansible_doc.exists():
        pytest.skip("ansible-core is not installed (the dev extra installs it)")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT), "ANSIBLE_NOCOLOR": "1"}
    found = subprocess.run(
        [str(ansible_doc), "-t", plugin_type, "--json", name], capture_output=True, text=True, env=env, timeout=120
    )
    assert found.returncode == 0, f"ansible-doc {plugin_type} {name}: {found.stderr}"
    docs = json.loads(found.stdout)
    assert name in docs, f"no {plugin_type} plugin {name} in the collection"
    options = docs[name]["doc"].get("options") or {}
    aliases = {alias for option in options.values() for alias in option.get("aliases") or []}
    return frozenset(options) | frozenset(aliases)


def _check_tasks(where: str, tasks: Any) -> int:
    """Every task of the collection names a module it has, with options that module takes; the count checked."""
    checked = 0
    for task in tasks or []:
        assert isinstance(task, dict), f"{where}: a task is a mapping, got {task!r}"
        for key in _TASK_LISTS:
            checked += _check_tasks(where, task.get(key))
        for key, args in task.items():
            if isinstance(key, str) and key.startswith(COLLECTION):
                known = _plugin_options("module", key)
                unknown = set(args or {}) - known if isinstance(args, dict) else set()
                assert not unknown, f"{where}: {key} takes no option {sorted(unknown)}"
                checked += 1
    return checked


def _check_ansible_yaml(block: DocBlock) -> None:
    """A YAML example of the collection: plays, task lists or an inventory source, checked against the plugins."""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(block.code)
    if isinstance(data, dict) and str(data.get("plugin", "")).startswith(COLLECTION):
        unknown = set(data) - _plugin_options("inventory", data["plugin"])
        assert not unknown, f"{block.where}: the {data['plugin']} inventory takes no option {sorted(unknown)}"
        return
    assert isinstance(data, list), f"{block.where}: a YAML example is a playbook, a task list or an inventory source"
    plays = [item for item in data if isinstance(item, dict) and "hosts" in item]
    checked = sum(_check_tasks(block.where, [{key: play.get(key) for key in _TASK_LISTS}]) for play in plays)
    if not plays:
        checked = _check_tasks(block.where, data)
    assert checked, f"{block.where}: the example uses no module of the collection"


def _run_on_sim(block: DocBlock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path / "sim"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # journals, replications, image catalogue
    monkeypatch.setenv("HVKIT_IMAGE_CATALOG", str(tmp_path / "images.json"))
    monkeypatch.chdir(tmp_path)
    worlds = iter(range(1, 100))

    def sim_for(_url: str) -> str:
        """A fresh sim world per URL: the first one (a source) holds the VMs, the others (targets) are empty."""
        number = next(worlds)
        url = f"sim://docs{number}"
        if number == 1:
            _populate(url)
        return url

    for url in set(re.findall(r"""["'](sim://[\w-]+)["']""", block.code)):
        _populate(url)
    with hvkit.connect("sim://docs-namespace") as hv:  # the `hv` and `vm` that short examples assume
        vm = hv.vms.start(hv.vms.create(VMSpec(name="web", memory_mib=256, disks=[DiskSpec(size_gib=0.01)])))
        run_block(block, sim_for, {"hvkit": hvkit, "hv": hv, "vm": vm})


def _check_signature(block: DocBlock, target: str) -> None:
    module, _, name = target.rpartition(".")
    func = getattr(importlib.import_module(module), name)
    shown = block.code.split("(", 1)[1].rsplit(")", 1)[0]
    documented = [p.strip().split("=")[0].lstrip("*") for p in shown.replace("\n", " ").split(",") if p.strip()]
    actual = []
    for p in inspect.signature(func).parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and "" not in actual:
            actual.append("")  # the bare '*'
        actual.append(p.name)
    assert documented == actual, f"{block.where}: documented {documented}, the code has {actual}"


def _check_cli(block: DocBlock) -> None:
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("hvkit"):
            words = []
            for word in line.split()[1:]:
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                words.append(word)
            commands.append((words, []))
        if commands:
            commands[-1][1].extend(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line))
    assert commands, f"{block.where}: no `hvkit ...` line"
    for words, flags in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "hvkit", *words, "--help"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"{block.where}: hvkit {' '.join(words)} --help: {proc.stderr}"
        missing = [f for f in flags if f not in proc.stdout]
        assert not missing, f"{block.where}: hvkit {' '.join(words)} has no {missing}"


def _check_error_tree(block: DocBlock) -> None:
    from hvkit import errors

    parents: list[tuple[int, type]] = []
    for line in block.code.splitlines():
        m = re.match(r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w+)", line)
        if not m:
            continue
        cls = getattr(errors, m.group("name"), None)
        assert isinstance(cls, type), f"{block.where}: hvkit.errors has no {m.group('name')}"
        depth = len(m.group("indent"))
        while parents and parents[-1][0] >= depth:
            parents.pop()
        if parents:
            assert issubclass(cls, parents[-1][1]), f"{block.where}: {cls.__name__} is no {parents[-1][1].__name__}"
        parents.append((depth, cls))


def test_readme_example_runs_on_sim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README example, verbatim: web-1 ends running (reverted to its memory snapshot), web-2 stopped."""
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path / "sim"))
    check_output(run_readme_example(), "sim")


def test_portability_table_names_every_backend_and_operation() -> None:
    from hvkit._matrix import PORTABILITY_ROWS, backend_portability

    text = (ROOT / "docs" / "portability.md").read_text()
    table = text.split("<!-- portability:start -->", 1)[1].split("<!-- portability:end -->", 1)[0]
    header = table.strip().splitlines()[0]
    for kind in backend_portability():
        assert f" {kind} |" in header
    for row in PORTABILITY_ROWS:
        assert row.call in table
