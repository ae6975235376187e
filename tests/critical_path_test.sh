#!/usr/bin/env bash
# Check the critical paths of the running server; non-zero exit on any failure.
cd "$(dirname "$0")/.." || exit 1
exec ./pcm-ops check "$@"
