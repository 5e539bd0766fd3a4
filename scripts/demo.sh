#!/usr/bin/env bash
# The demo: set the machine up, build the lab of three hosts, start pods (Redis and two counters) with
# clients watching them, and run playbooks/rolling_patch.yml over SSH (demo/rolling_patch.py).
# scripts/demo.sh --keep leaves the lab up afterwards; demo/single_host.py is the one-host version.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/demo/rolling_patch.py" "$@"
