#!/usr/bin/env bash
# quick-rollback.sh - roll one feature flag back, verify it, check health (runbook contract).
FEATURE_NAME=${1:-}
if [ -z "$FEATURE_NAME" ]; then
    echo "Usage: ./quick-rollback.sh <feature_flag_name>"
    exit 1
fi
cd "$(dirname "$0")" || exit 1
exec ./pcm-ops rollback flag "$FEATURE_NAME" --reason "quick-rollback.sh"
