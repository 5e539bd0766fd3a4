#!/usr/bin/env bash
# ansible-test sanity for the collection's modules and module_utils, run locally (no containers).
#
# ansible-test must run from a path that ends in ansible_collections/<namespace>/<name>, so the
# committed files are copied there first. It builds one virtual environment per sanity test and
# bootstraps pip in each with a script it downloads from ci-files.testing.ansible.com, which this
# machine cannot reach; the bootstrap placed in its cache instead takes pip from the Python
# installation (ensurepip) and installs the requirements from PyPI as usual.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
WORK=$(mktemp -d /tmp/autopod-sanity.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

cache="$HOME/.ansible/test/cache"
pip_version=$(grep -ho "pip='[0-9.]*'" "$VENV"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py \
  | head -1 | grep -o "[0-9.]*")
bootstrap="$cache/get_pip_${pip_version//./_}.py"
mkdir -p "$cache"
cat > "$bootstrap" <<'PY'
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
PY

target="$WORK/ansible_collections/autopod/autopod"
mkdir -p "$target"
(cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$target")
cd "$target"
"$VENV/bin/ansible-test" sanity --local --python "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
