#!/usr/bin/env bash
# Set up (virtual environment, install, database, admin token) and start PCM-Ops Tools
# in the background on ${HOST:-127.0.0.1}:${PORT:-8500} with ${WORKERS:-1} worker(s).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
bootstrap_venv
exec .venv/bin/pcm-ops server start
