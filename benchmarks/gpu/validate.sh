#!/usr/bin/env bash
# One prepared command that proves the CUDA path on a GPU machine (issue 17); the stages, the
# budget and the results folder are described in benchmarks/gpu/validate.py (which runs every
# command from the repository root; relative paths given here are the caller's).
#   bash benchmarks/gpu/validate.sh RESULTS_DIR [--budget 480] [--dry-run] [--stages build,tests,...]
set -uo pipefail
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$(dirname "$0")/validate.py" "$@"
