#!/usr/bin/env bash
# Tests crt-reproduce on a tiny protocol: records, report and plots are written; a run stopped
# part way (several times) and started again ends bit for bit where an uninterrupted one does;
# finished runs are skipped; a run's recipe override is applied and reported; a record trained
# with another recipe is refused; a protocol with a misspelt field is refused, naming it.
#   bash test_tiny.sh CRT_REPRODUCE PROTOCOL
set -euo pipefail
tool=$1 protocol=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$tool" --protocol "$protocol" --out "$work/straight" --threads 1 2> "$work/straight.log" \
  || { cat "$work/straight.log"; fail "the straight run exited non-zero"; }
dir=$work/straight/tiny
[[ $(wc -l < "$dir/runs.jsonl") -eq 3 ]] || fail "expected 3 records, got $(wc -l < "$dir/runs.jsonl")"
for f in report.md ppl_vs_flops.svg ppl_vs_latency.svg; do [[ -s $dir/$f ]] || fail "$f missing"; done
grep -q "crt-ncgru-8" "$dir/report.md" || fail "the report lacks a run"
grep -q "<polyline" "$dir/ppl_vs_flops.svg" || fail "the FLOPs plot has no line"

# Stopped after every 5 steps (exit 3, checkpoint saved), then started again until done.
status=3 starts=0
while ((status == 3)); do
  starts=$((starts + 1))
  ((starts < 20)) || fail "the interrupted runs never finished"
  set +e
  "$tool" --protocol "$protocol" --out "$work/stopped" --threads 1 --stop-after-steps 5 2>> "$work/stopped.log"
  status=$?
  set -e
done
((status == 0)) || { tail "$work/stopped.log"; fail "the resumed runs ended with status $status"; }
((starts >= 4)) || fail "expected at least 4 starts, got $starts"
grep -q "resumed at step 5" "$work/stopped.log" || fail "no run resumed from its checkpoint"

python3 - "$dir/runs.jsonl" "$work/stopped/tiny/runs.jsonl" <<'PY'
import json, sys
a = {r["run"]: r for r in map(json.loads, open(sys.argv[1]))}
b = {r["run"]: r for r in map(json.loads, open(sys.argv[2]))}
assert a.keys() == b.keys(), (a.keys(), b.keys())
need = ["run", "model", "cell", "seg_len", "memory", "position", "valid_ppl", "test_ppl", "train_tokens",
        "tokens_per_s", "wall_s", "params", "flops_forward_per_segment", "commits"]
for name in a:
    for k in need:
        assert k in a[name], f"record {name} lacks {k}"
    for k in ["valid_nll", "test_nll", "train_tokens", "steps", "params", "flops_forward_per_segment"]:
        assert a[name][k] == b[name][k], f"{name}: {k} {a[name][k]} (straight) != {b[name][k]} (stopped and resumed)"
    assert a[name]["valid_ppl"] > 1 and a[name]["test_ppl"] > 1
assert a["crt-gru-4"]["recipe"]["lr"] == 0.002, "a run's recipe override was not applied"
assert a["transformer-8"]["recipe"]["lr"] == 0.003, "a run without overrides lost the protocol's recipe"
print("records agree bit for bit:", ", ".join(sorted(a)))
PY

# Finished runs are skipped.
"$tool" --protocol "$protocol" --out "$work/straight" --threads 1 2> "$work/again.log"
[[ $(grep -c "finished already" "$work/again.log") -eq 3 ]] || fail "finished runs were not skipped"
[[ $(wc -l < "$dir/runs.jsonl") -eq 3 ]] || fail "a finished run was recorded twice"

grep -q "lr 0.002" "$dir/report.md" || fail "the report does not show a run's recipe change"
grep -q "Lowest validation perplexity" "$dir/report.md" || fail "the report does not name the best recipe"

# Latency measured side by side for every run replaces the records' figures in the report.
"$tool" --protocol "$protocol" --out "$work/straight" --threads 1 --measure-latency 2> "$work/latency.log" ||
  { cat "$work/latency.log"; fail "--measure-latency exited non-zero"; }
python3 - "$dir/latency.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
runs = v["ms_per_segment"]
assert set(runs) == {"transformer-8", "crt-ncgru-8", "crt-gru-4"}, runs
assert all(ms > 0 for ms in runs.values()), runs
assert v["threads"] == 1 and v["rounds"] >= 1 and v["cpu"] and v["commit"], v
PY
grep -q "timed side by side in one process" "$dir/report.md" || fail "the report does not use latency.json"

# A record trained with another recipe than the protocol's now is refused, naming the run.
sed 's/"lr": 0.002/"lr": 0.001/' "$protocol" > "$work/changed.json"
set +e
"$tool" --protocol "$work/changed.json" --out "$work/straight" --threads 1 2> "$work/changed.log"
status=$?
set -e
((status == 1)) || fail "a record of another recipe was accepted (status $status)"
grep -q "run 'crt-gru-4'.*trained with the recipe" "$work/changed.log" || { cat "$work/changed.log"; fail "the stale record is not named"; }

# A misspelt field is refused, naming it.
sed 's/"warmup"/"warmpu"/' "$protocol" > "$work/bad.json"
set +e
"$tool" --protocol "$work/bad.json" --out "$work/bad" 2> "$work/bad.log"
status=$?
set -e
((status == 1)) || fail "a bad protocol exited with $status"
grep -q "recipe.warmpu" "$work/bad.log" || { cat "$work/bad.log"; fail "the error does not name the field"; }
echo "reproduce-tiny: ok ($starts starts for the stopped runs)"
