#!/usr/bin/env bash
# Stop PCM-Ops Tools: SIGTERM, then SIGKILL after a timeout. Not running is not an error.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/pcm-ops ]; then
    echo "PCM-Ops Tools is not installed here (no .venv); nothing to stop."
    exit 0
fi
exec .venv/bin/pcm-ops server stop "$@"
