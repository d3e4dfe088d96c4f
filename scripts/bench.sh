#!/usr/bin/env bash
# The side-by-side benchmarks (docs/benchmarks.md, "Side by side").
#
#   scripts/bench.sh            # full run: 1,000,000 members, 10 s per load run
#   scripts/bench.sh --quick    # under 3 minutes: 100,000 members, 4 s per run
#   scripts/bench.sh --members 500000 --duration 6
#
# Installs what the run needs when it is missing (Debian's redis-server,
# redis-tools, nginx and wrk), builds every binary in release mode (the
# bench starts standings-agent and standings-gateway from beside itself),
# then runs `standings-loadtest bench` with the arguments given. Results go
# to TARGET/bench/results.json and the table to stdout. Everything runs on
# loopback ports and stops when the run ends or on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

export PATH="$PATH:/usr/sbin"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench.sh: installing ${missing[*]} from Debian" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts an nginx service on install; the bench runs its own on a
# free port and never touches the system one.

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bins --locked
exec "$target/release/standings-loadtest" bench "$@"
