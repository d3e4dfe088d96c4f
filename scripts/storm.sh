#!/usr/bin/env bash
# A rank storm against the embedded gateway (docs/benchmarks.md, "Rank
# storm"): how fast excess live-rank reads are shed, what /top's p99 is
# during the storm beside its unloaded value, and the gateway's RSS before,
# during and after.
#
#   scripts/storm.sh                # 10 s storm of 2,000 connections
#   scripts/storm.sh 5 1000         # DURATION_S CONNECTIONS
#
# Installs wrk when missing, builds the gateway in release mode, starts it
# on a free loopback port with the embedded example config (per-address
# connection cap raised: every load connection comes from 127.0.0.1), seeds
# 2,000 members, and runs wrk against loopback only. Stops everything it
# started when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-2000}"
(( duration >= 4 && duration <= 120 )) || { echo "storm.sh: duration 4..120 s" >&2; exit 64; }
(( connections >= 1 && connections <= 8000 )) || { echo "storm.sh: connections 1..8000" >&2; exit 64; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends wrk
fi
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p standings-gateway

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
    -e "s/^max_connections_per_client = .*/max_connections_per_client = 10000/" \
    -e "s|^static_dir = .*|static_dir = \"$work/static\"|" \
    -e "s|^data_dir = .*|data_dir = \"$work/data\"|" \
    config/examples/embedded.toml > "$work/storm.toml"
"$target/release/standings-gateway" --config "$work/storm.toml" > "$work/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done

python3 - "$base" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
for i in range(2000):
    body = json.dumps({"member": f"user:{i}", "score": (i * 7919) % 5000, "op": "set"}).encode()
    req = urllib.request.Request(base + "/v1/boards/global/scores", body, {"content-type": "application/json"})
    urllib.request.urlopen(req).read()
PY
sleep 2

rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$gateway/status"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
p50() { awk '$1 == "50%" {print $2}' "$1"; }
rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {n = $5} END {print n + 0}' "$1"; }
total() { awk '/requests in/ {print $1}' "$1"; }

rss_before=$(rss)
wrk -t1 -c4 -d4s --latency "$base/v1/boards/global/top?limit=20" > "$work/unloaded.txt"
wrk -t2 -c"$connections" -d"${duration}s" --latency "$base/v1/boards/global/members/user%3A7" > "$work/storm.txt" &
storm=$!
sleep 1
wrk -t1 -c4 -d"$((duration - 2))s" --latency "$base/v1/boards/global/top?limit=20" > "$work/loaded.txt"
rss_during=$(rss)
wait $storm
sleep 3
rss_after=$(rss)
metrics=$(curl -s "$base/metrics")
shed=$(awk '/^standings_shed_total\{reason="fanout"\}/ {print $2}' <<< "$metrics")

cat <<TABLE
| figure | value |
| --- | --- |
| /top p99 unloaded (wrk 4 conns) | $(p99 "$work/unloaded.txt") ($(rate "$work/unloaded.txt") req/s) |
| /top p99 during the storm (wrk 4 conns) | $(p99 "$work/loaded.txt") ($(rate "$work/loaded.txt") req/s) |
| rank storm: $connections conns, ${duration}s | $(rate "$work/storm.txt") req/s, $(total "$work/storm.txt") answers, $(non2xx "$work/storm.txt") non-2xx |
| rank storm latency p50 / p99 (mostly shed) | $(p50 "$work/storm.txt") / $(p99 "$work/storm.txt") |
| shed by the fan-out limit (standings_shed_total) | ${shed:-0} |
| gateway RSS before / during / after | $rss_before / $rss_during / $rss_after |
TABLE
