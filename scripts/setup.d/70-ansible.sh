# Ansible collection (ansible_collections/hvkit/hypervisor): ansible-core in the venv, and a stand-in for
# the pip bootstrap script ansible-test downloads when it makes its test virtualenvs (sanity --venv,
# units --venv). The stand-in installs the pip that Python bundles (ensurepip) and then runs pip with the
# packages ansible-test asks for other than pip itself (the bundled pip stands in for the pinned one), so
# the bootstrap needs no download at all. Idempotent.
.venv/bin/python -m pip install -q 'ansible-core>=2.19,<2.20'
ANSIBLE_PIP_VERSION=$(.venv/bin/python - <<'PY'
import sys
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="%d.%d" % sys.version_info[:2]))["pip"])
PY
)
ANSIBLE_GET_PIP="$HOME/.ansible/test/cache/get_pip_${ANSIBLE_PIP_VERSION//./_}.py"
mkdir -p "$(dirname "$ANSIBLE_GET_PIP")"
cat > "$ANSIBLE_GET_PIP" <<'PY'
"""Stand-in for get-pip.py: bootstrap the interpreter's bundled pip, then `pip install` what else is asked."""
import ensurepip
import importlib
import runpy
import sys

ensurepip.bootstrap(upgrade=True)
importlib.invalidate_caches()
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
packages = [a for a in args if not a.startswith("-") and not a.lower().startswith("pip")]
if packages:
    sys.argv = ["pip", "install", *args]
    runpy.run_module("pip", run_name="__main__", alter_sys=True)
PY
export HVKIT_ANSIBLE_GET_PIP="$ANSIBLE_GET_PIP"
unset ANSIBLE_PIP_VERSION ANSIBLE_GET_PIP
