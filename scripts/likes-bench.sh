#!/usr/bin/env bash
# The likes benchmark (docs/benchmarks.md, "Likes"): like events through the
# gateway against raw Redis doing the seed's three commands for a like
# (SADD, HINCRBY, ZINCRBY), side by side on the same cluster in one run.
#
#   scripts/likes-bench.sh            # 10 s per side
#   scripts/likes-bench.sh --quick    # 4 s per side, about a minute
#   scripts/likes-bench.sh --duration 20 --connections 64 --threads 2
#
# Installs what the run needs when it is missing (Debian's redis-server,
# redis-tools and wrk), builds every binary in release mode (the run starts
# standings-agent and standings-gateway from beside itself), then runs
# `standings-loadtest bench-likes` with the arguments given. Results go to
# TARGET/bench/likes.json and the table to stdout. Everything runs on
# loopback ports and stops when the run ends or on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "likes-bench.sh: installing ${missing[*]} from Debian" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bins --locked
exec "$target/release/standings-loadtest" bench-likes "$@"
