#!/usr/bin/env bash
# Run every benchmark and rewrite bench/RESULTS.md (see bench/README.md).
#   scripts/bench.sh              everything                   (make bench)
#   scripts/bench.sh --smoke      a few iterations of the quick parts (cold start, in-process, cost); prints, writes nothing
#                                                              (make bench ARGS=--smoke)
# Other options go to `python -m bench` (--only PARTS, --output FILE, --json FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

bash scripts/setup.sh

say "Benchmarks (results: bench/RESULTS.md)"
if [ $# -eq 0 ]; then default_command="make bench"; else default_command="scripts/bench.sh $*"; fi
export BENCH_COMMAND="${BENCH_COMMAND:-$default_command}"
exec .venv/bin/python -m bench "$@"
