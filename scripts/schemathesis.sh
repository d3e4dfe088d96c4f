#!/usr/bin/env bash
# Fuzzes the gateway against its contract, docs/openapi.yaml, with
# schemathesis (4.x, from PyPI; installed when missing).
#
# Builds and starts the embedded gateway (in-process store, no Redis) on a
# free loopback port with the embedded example config, whose boards the
# spec's examples name: `global` (one period) and `arena` (periods all,
# daily, weekly and the blend `hot`, so period=, /periods, the per-period
# static files and PUT .../blends/hot are exercised on a board that has
# them). Waits for it, writes the examples' member to both boards so the
# members examples find data, then runs schemathesis (examples, coverage
# and fuzzing phases)
# with a bounded number of examples per operation and these checks: no 5xx;
# response bodies, headers, statuses and content types as documented;
# requests that break the schema refused with a 4xx; undocumented methods
# answered 405 with a right `Allow`. Exits non-zero on any failure; the
# gateway is stopped on exit however the script ends. About 20 s on 2 cores
# once the gateway is built.
#
# Environment:
#   ST_MAX_EXAMPLES   examples per operation and phase (default 200)
#   ST_CHECKS         comma-separated checks (default: the list below)
#   ST_SEED           seed, to replay a run (default: random, printed by st)
#   ST_WORKERS        concurrent workers (default 1: schemathesis workers are
#                     threads, and CPython 3.11 can fail ast.parse under
#                     threads, gh-106905, which st reports as an error)
#   GATEWAY_BIN       a gateway binary to use instead of building one
#   CARGO_TARGET_DIR  honoured by the build and when finding the binary
# Extra arguments are passed to `st run` (e.g. --include-path-regex top).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# schemathesis 4.x: the CLI flags below are 4.x's (3.x spelled them
# differently). `python -m schemathesis.cli` works whether or not pip's
# script directory is on PATH.
st=(python3 -m schemathesis.cli)
if ! python3 -c 'import schemathesis, sys; sys.exit(0 if schemathesis.__version__.startswith("4.") else 1)' 2>/dev/null; then
  echo "schemathesis.sh: installing schemathesis 4.x from PyPI" >&2
  python3 -m pip install --quiet 'schemathesis>=4,<5' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'schemathesis>=4,<5'
fi

if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build -p standings-gateway
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  GATEWAY_BIN="$target_dir/debug/standings-gateway"
fi
[ -x "$GATEWAY_BIN" ] || { echo "schemathesis.sh: no gateway binary at $GATEWAY_BIN" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/standings-schemathesis.XXXXXX")
gateway_pid=
st_pid=
cleanup() {
  status=$?
  for pid in $st_pid $gateway_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -ne 0 ] && [ -s "$work/gateway.log" ]; then
    echo "schemathesis.sh: last lines of the gateway's log:" >&2
    tail -n 20 "$work/gateway.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# The embedded config writes static JSON under ./target/standings-static:
# run in the scratch directory so that lands there, not in the work tree.
(cd "$work" && RUST_LOG="${RUST_LOG:-warn}" exec "$GATEWAY_BIN" --listen "127.0.0.1:$port") \
  >"$work/gateway.log" 2>&1 &
gateway_pid=$!

# Up (/healthz), then ready (/readyz: a snapshot is loaded), 30 s at most;
# then one write per example board so that the members examples answer 200.
python3 - "$base" "$gateway_pid" <<'EOF'
import json, os, sys, time, urllib.error, urllib.request

base, pid = sys.argv[1], int(sys.argv[2])

def status(path, data=None):
    req = urllib.request.Request(base + path, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # not a zombie
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False

deadline = time.monotonic() + 30
for path in ("/healthz", "/readyz"):
    while status(path) != 200:
        if not alive():
            sys.exit(f"schemathesis.sh: the gateway exited before {path} answered 200")
        if time.monotonic() > deadline:
            sys.exit(f"schemathesis.sh: {path} did not answer 200 within 30 s")
        time.sleep(0.1)
body = json.dumps({"member": "user:10086", "score": 50, "op": "set"}).encode()
for board in ("global", "arena"):
    if status(f"/v1/boards/{board}/scores", body) != 200:
        sys.exit(f"schemathesis.sh: the seed write to {board} failed")
EOF

checks=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance
checks+=,response_headers_conformance,negative_data_rejection,unsupported_method,allow_header_conformance
echo "schemathesis.sh: gateway up on $base; running schemathesis" >&2
# Run from the scratch directory: st writes nothing into the work tree. In
# the background and waited for, so that a signal to this script runs the
# cleanup at once instead of after st.
cd "$work"
"${st[@]}" run "$repo/docs/openapi.yaml" \
  --url "$base" \
  --phases examples,coverage,fuzzing \
  --checks "${ST_CHECKS:-$checks}" \
  --max-examples "${ST_MAX_EXAMPLES:-200}" \
  ${ST_SEED:+--seed "$ST_SEED"} \
  --workers "${ST_WORKERS:-1}" \
  --request-timeout 10 \
  --generation-database none \
  "$@" &
st_pid=$!
wait "$st_pid"
