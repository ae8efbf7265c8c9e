#!/bin/bash
# Compares crt's GEMM with OpenBLAS: runs bench_gemm once per (impl, threads), each in its own
# process so that OpenBLAS's spinning threads and oneTBB's never share one, pairs the results
# and prints GFLOP/s per shape, the ratio crt/OpenBLAS and its geometric mean per thread count.
# Usage: bench/gemm_compare.sh [BUILD_DIR] [extra bench_gemm flags...]
#   REPS=3 (repetitions; the median is used), ROUNDS=1 (the impls run alternately this many
#   times and the best median counts: on a shared machine other load only ever slows a run
#   down), THREADS="1 2", SHAPES=regex on "M/N/K" (default all), OUT=dir for the JSON files.
#   PEAK=GFLOP/s of one core adds crt's % of peak. One thread is timed in CPU time, more in
#   wall-clock time.
set -euo pipefail
build=${1:-build}
shift || true
exe="$build/bench/bench_gemm"
[ -x "$exe" ] || { echo "no $exe: build with -Dbenchmarks=enabled" >&2; exit 1; }
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
reps=${REPS:-3}
for threads in ${THREADS:-1 2}; do
  for round in $(seq "${ROUNDS:-1}"); do
    for impl in crt openblas; do
      json="$out/gemm_${impl}_${threads}_${round}.json"
      OPENBLAS_NUM_THREADS=$threads "$exe" --benchmark_filter="^gemm/$impl/${SHAPES:-.*}/$threads\$" \
        --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
        --benchmark_out="$json" --benchmark_out_format=json "$@" >/dev/null
    done
  done
done
PEAK=${PEAK:-0} python3 - "$out" ${THREADS:-1 2} <<'EOF'
import glob, json, math, os, sys
out, thread_counts = sys.argv[1], sys.argv[2:]
peak = float(os.environ["PEAK"])

def load(pattern, want_impl):
    """shape -> the best over rounds of the median GFLOP/s"""
    rates = {}
    for path in glob.glob(pattern):
      for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name", "median") != "median":
            continue
        _, impl, m, n, k, _t = b["run_name"].split("/")
        if impl != want_impl:
            continue
        shape = (int(m), int(n), int(k))
        rates[shape] = max(rates.get(shape, 0.0), b["GFLOPS"])  # the counter is in GFLOP/s
    return rates

for t in thread_counts:
    crt = load(f"{out}/gemm_crt_{t}_*.json", "crt")
    ob = load(f"{out}/gemm_openblas_{t}_*.json", "openblas")
    print(f"\n== {t} thread(s): GFLOP/s (median of repetitions, best of rounds) ==")
    print(f"{'M':>6} {'N':>6} {'K':>6} {'crt':>8} {'openblas':>9} {'ratio':>7}" +
          (f" {'crt %peak':>9}" if peak else ""))
    logs = []
    for shape in sorted(crt):
        c, o = crt[shape], ob.get(shape)
        ratio = c / o if o else float("nan")
        if o:
            logs.append(math.log(ratio))
        print(f"{shape[0]:>6} {shape[1]:>6} {shape[2]:>6} {c:8.1f} {o if o else float('nan'):9.1f} "
              f"{ratio:7.2f}" + (f" {100 * c / (peak * int(t)):8.0f}%" if peak else ""))
    if crt:
        gm_crt = math.exp(sum(math.log(v) for v in crt.values()) / len(crt))
        print(f"geometric mean crt: {gm_crt:.1f} GFLOP/s", end="")
    if logs:
        gm_ob = math.exp(sum(math.log(v) for v in ob.values()) / len(ob))
        print(f", openblas: {gm_ob:.1f} GFLOP/s, ratio crt/openblas: {math.exp(sum(logs) / len(logs)):.2f}")
    else:
        print()
print(f"\nJSON in {out}")
EOF
