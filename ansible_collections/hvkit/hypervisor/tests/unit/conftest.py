# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests run the modules in-process against hvkit's simulated hypervisor (sim://, a fresh state folder)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

if importlib.util.find_spec("hvkit") is None:  # ansible-test's own virtualenv: hvkit from the repository
    REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 6))
    if os.path.isfile(os.path.join(REPO, "hvkit", "__init__.py")):
        sys.path.insert(0, REPO)

from ansible.module_utils.testing import patch_module_args


class ModuleExit(SystemExit):
    """A module's exit_json / fail_json, caught: ``result`` is what it returned, ``failed`` whether it failed."""

    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args, check=False, diff=False) -> (failed, result), the module run in this process."""
    from ansible.module_utils import basic

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), False)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(module, args, check=False, diff=False):
        args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args):
            try:
                module.main()
            except ModuleExit as done:
                return done.failed, done.result
        raise AssertionError("the module returned without exit_json or fail_json")

    return run


@pytest.fixture
def sim_url(tmp_path):
    """A sim:// hypervisor of its own, kept in a state folder so that every module run sees the last one's work."""
    from hvkit.backends.sim import _world

    name = "unit%d" % (abs(hash(str(tmp_path))) % 10**8)
    yield "sim://%s?state_dir=%s" % (name, tmp_path)
    _world.forget(name)
