#!/usr/bin/env bash
# The durable embedded store's write cost, side by side in one run
# (docs/benchmarks.md, "Durable embedded store"): writes/s and p99 through
# the gateway on the durable store (sync = commit) and on the volatile
# memory store, against raw Redis with appendonly yes and appendfsync
# always doing ZINCRBY (redis-benchmark). All on loopback; stops what it
# started.
#
#   scripts/durable-bench.sh            # 10 s per run, 32 connections
#   scripts/durable-bench.sh 5 64       # DURATION_S CONNECTIONS
#   GATEWAY_BIN=/path/to/standings-gateway scripts/durable-bench.sh
#                                       # that build, not this checkout's
#                                       # (an A/B of two builds)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-32}"
(( duration >= 2 && duration <= 120 )) || { echo "durable-bench.sh: duration 2..120 s" >&2; exit 64; }
(( connections >= 1 && connections <= 1000 )) || { echo "durable-bench.sh: connections 1..1000" >&2; exit 64; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export PATH="$PATH:/usr/sbin"
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
target="${CARGO_TARGET_DIR:-target}"
gateway_bin="${GATEWAY_BIN:-}"
if [ -z "$gateway_bin" ]; then
  cargo build --release --locked -p standings-gateway
  gateway_bin="$target/release/standings-gateway"
fi

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cat loadtest/wrk/write.lua > "$work/write.lua"

# The CPU time (user + system, in clock ticks) PID has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One gateway run: KIND NAME [SYNC] -> "req/s p50 p99 cpu" (wrk's own
# figures, and the gateway's CPU µs per write over the wrk run).
gateway_run() {
  local kind=$1 name=$2 sync=${3:-commit} port
  port=$(free_port)
  sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
      -e "s/^kind = .*/kind = \"$kind\"/" \
      -e "s/^sync = .*/sync = \"$sync\"/" \
      -e "s|^data_dir = .*|data_dir = \"$work/data-$name\"|" \
      -e "s|^static_dir = .*|static_dir = \"\"|" \
      config/examples/embedded.toml > "$work/$name.toml"
  "$gateway_bin" --config "$work/$name.toml" > "$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  local t0 t1
  t0=$(cpu_ticks "$pid")
  wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/write.lua" \
      "http://127.0.0.1:$port" -- 100000 global > "$work/$name.wrk"
  t1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99 requests cpu
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$work/$name.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$name.wrk")
  requests=$(awk '/requests in/ {print $1}' "$work/$name.wrk")
  cpu=$(python3 -c "print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / max(1, $requests):.1f}')")
  echo "$rps $p50 $p99 $cpu"
}

read -r emb_rps emb_p50 emb_p99 emb_cpu <<< "$(gateway_run embedded durable)"
bytes=$(du -sb "$work/data-durable" | awk '{print $1}')
read -r int_rps int_p50 int_p99 int_cpu <<< "$(gateway_run embedded interval interval:100ms)"
read -r mem_rps mem_p50 mem_p99 mem_cpu <<< "$(gateway_run memory memory)"

rport=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis" --save "" \
  --appendonly yes --appendfsync always --daemonize no > "$work/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
# Sized to last about the duration at the gateway's measured rate.
requests=$(python3 -c "print(max(20000, int(float('$emb_rps') * $duration)))")
redis-benchmark -h 127.0.0.1 -p "$rport" --threads 2 -c "$connections" -n "$requests" -r 100000 \
  --precision 3 --csv ZINCRBY bench:z 1 user:__rand_int__ > "$work/redis.csv"
read -r r_rps r_p50 r_p99 <<< "$(python3 - "$work/redis.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r = rows[-1]
print(r["rps"], r["p50_latency_ms"] + "ms", r["p99_latency_ms"] + "ms")
PY
)"
ratio=$(python3 -c "print(f'{float(\"$emb_rps\") / float(\"$r_rps\"):.2f}')")
mem_ratio=$(python3 -c "print(f'{float(\"$emb_rps\") / float(\"$mem_rps\"):.2f}')")

cat <<TABLE
| run ($connections connections, ${duration}s) | writes/s | p50 | p99 | gateway CPU µs per write |
| --- | --- | --- | --- | --- |
| gateway, durable embedded (sync = commit) | $emb_rps | $emb_p50 | $emb_p99 | $emb_cpu |
| gateway, durable embedded (sync = interval:100ms) | $int_rps | $int_p50 | $int_p99 | $int_cpu |
| gateway, memory (volatile) | $mem_rps | $mem_p50 | $mem_p99 | $mem_cpu |
| raw Redis ZINCRBY, appendonly + appendfsync always | $r_rps | $r_p50 | $r_p99 | |

durable / Redis-AOF-always: $ratio; durable / memory: $mem_ratio; data_dir after the durable run: $bytes bytes
TABLE
