#!/bin/bash
# GRU latency, crt (bench_gru) beside PyTorch (bench/pytorch_gru.py, when python3-torch is
# installed), each side in its own process per thread count. Prints microseconds per call and
# the speed ratio PyTorch/crt (above 1: crt is faster).
# Usage: bench/gru_compare.sh [BUILD_DIR]   THREADS="1 2", FILTER=regex on "<kind>/<d>/<batch>"
#   (default all: gru_cell, gru_seq, gru_seq_train at d 256/410, batch 1/16, 17/35/70 steps).
set -euo pipefail
build=${1:-build}
exe="$build/bench/bench_gru"
[ -x "$exe" ] || { echo "no $exe: build with -Dbenchmarks=enabled" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
for threads in ${THREADS:-1 2}; do
  "$exe" --benchmark_filter="/$threads/real_time\$" --benchmark_repetitions=3 \
    --benchmark_report_aggregates_only=true --benchmark_out="$out/crt_$threads.json" \
    --benchmark_out_format=json >/dev/null 2>&1
  if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    OMP_NUM_THREADS=$threads /usr/bin/python3 "$here/pytorch_gru.py" --threads "$threads" \
      >"$out/pytorch_$threads.jsonl"
  fi
done
python3 - "$out" "${FILTER:-.}" <<'PY'
import glob, json, re, sys
out, pattern = sys.argv[1], re.compile(sys.argv[2])
crt, torch = {}, {}
for path in glob.glob(f"{out}/crt_*.json"):
    for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            parts = b["run_name"].split("/")
            crt["/".join([parts[0]] + parts[2:-1])] = b["real_time"]  # microseconds
for path in glob.glob(f"{out}/pytorch_*.jsonl"):
    for line in open(path):
        r = json.loads(line)
        parts = r["name"].split("/")
        torch["/".join([parts[0]] + parts[2:])] = r["us"]
print(f"{'benchmark (kind/d/batch[/steps]/threads)':<44} {'crt us':>10} {'pytorch us':>11} {'speed-up':>9}")
for key in sorted(crt, key=lambda k: (k.split("/")[0], [int(x) for x in k.split("/")[1:]])):
    if not pattern.search(key):
        continue
    t = torch.get(key)
    ratio = f"{t / crt[key]:8.2f}x" if t else "      n/a"
    print(f"{key:<44} {crt[key]:10.1f} {t if t else float('nan'):11.1f} {ratio}")
PY
