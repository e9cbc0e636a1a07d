#!/usr/bin/env bash
# Set up (once) and run everything locally: Temporal dev server + UI, simulators, worker, API,
# then a demo of every action. Extra arguments go to `kleer-hubspot dev` (see --help).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
exec .venv/bin/kleer-hubspot dev "$@"
