#!/usr/bin/env bash
# Closed-loop load on the real service with wrk (a C client that leaves the CPU to the server):
# one-customer /predict (50 transactions + 100 events) at 1, 4 and 16 connections.
# Usage: bash benchmarks/serve_wrk.sh   (needs `apt-get install wrk`; loopback only; ~70 s)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/churnclv-wrk}
PORT=${PORT:-3311}
OUT=benchmarks/results/serve_wrk.txt
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
[ -f "$WORK/mlruns.db" ] || .venv/bin/churnclv demo --workdir "$WORK" --customers 2000 >/dev/null
mkdir -p "$WORK/wrk"
.venv/bin/python - "$WORK/wrk" <<'PY'
import json, sys
sys.path.insert(0, "benchmarks")
from serve import _customer
folder = sys.argv[1]
open(f"{folder}/body.json", "w").write(json.dumps({"customers": [_customer(0)]}))
open(f"{folder}/predict.lua", "w").write(
    f'local f = io.open("{folder}/body.json", "r")\nwrk.method = "POST"\n'
    'wrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/json"\n'
)
PY
setsid .venv/bin/churnclv serve --workdir "$WORK" --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill -- -$SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 90); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break
  sleep 1
done
{
  echo "# $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cpus"
  for c in 1 4 16; do
    echo "## $c connection(s), 20 s"
    wrk -t1 -c"$c" -d20s --latency -s "$WORK/wrk/predict.lua" "http://127.0.0.1:$PORT/predict"
  done
} | tee "$OUT"
