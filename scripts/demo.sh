#!/usr/bin/env bash
# The demo: set the machine up, then show a pod keeping its TCP connection and memory through
# checkpoint and restore (demo/single_host.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/demo/single_host.py"
