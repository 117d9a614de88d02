# Sourced by scripts/test-all.sh: pre-build the vcsim launcher (about 20-30 s cold, instant when cached).
echo "== vmware: building the vcsim launcher"
.venv/bin/python -c "from hvkit.testing.vcsim import build; print(build())"
