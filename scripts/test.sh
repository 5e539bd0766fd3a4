#!/usr/bin/env bash
# The test command: set the machine up, then run the tiers and every check. Exits non-zero on any failure.
#   1. pytest: unit tests, integration tests (real namespaces, CRIU, pyroute2, Ansible against localhost)
#      and lab tests (machine-like hosts over SSH); the QEMU guests' and the fleet's tiers are selected by
#      marker (pytest.ini), e.g. scripts/test.sh -m guests tests/qemu
#   2. ansible-test sanity on the collection's modules and module_utils
#   3. ansible-lint on roles and playbooks
# Tests that need root or CRIU fail, never skip, when they are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"

status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  exit 1
elif [ "$status" != 0 ]; then
  exit "$status"
fi
scripts/sanity.sh
.venv/bin/ansible-lint --nocolor
echo "[test] all tiers and checks passed"
