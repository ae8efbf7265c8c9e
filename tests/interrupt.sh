#!/usr/bin/env bash
# Ctrl-C during `crt train`: the current step finishes, the checkpoint is written, the tool says
# where and how to resume and exits with 128 + the signal; --resume continues from that step;
# SIGTERM does the same; a second signal ends the process at once.
#   bash interrupt.sh CRT
set -uo pipefail
crt=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
train=("$crt" train --layers 1 --d-model 16 --heads 2 --d-inner 16 --seg-len 8 --batch 4 --no-final-eval
       --log-every 1 --steps 1000000 --out "$work/m.safetensors")

# Starts training in the background, waits until it has logged step $1, then sends signal $2.
# Sets `status` to the exit status and leaves stderr in $work/log.
run_and_signal() {
  local after=$1 sig=$2 i
  "${train[@]}" "${@:3}" > /dev/null 2> "$work/log" &
  local pid=$!
  for ((i = 0; i < 600; ++i)); do
    grep -q "^step $after/" "$work/log" 2> /dev/null && break
    sleep 0.1
  done
  kill "-$sig" "$pid"
  wait "$pid"
  status=$?
}

run_and_signal 20 INT
((status == 130)) || { cat "$work/log"; fail "SIGINT: exit status $status, expected 130"; }
grep -qE "^interrupted: saved at step [0-9]+ of 1000000: resume with crt train --resume $work/m.safetensors" "$work/log" ||
  { cat "$work/log"; fail "SIGINT: no 'saved at step' line"; }
saved=$(sed -nE 's/^interrupted: saved at step ([0-9]+) .*/\1/p' "$work/log")
((saved >= 20)) || fail "saved at step $saved, before the step the signal followed"
[[ -s $work/m.safetensors ]] || fail "no checkpoint after SIGINT"
ls "$work" | grep -q '\.tmp\.' && fail "a temporary checkpoint was left behind"

run_and_signal $((saved + 5)) TERM --resume "$work/m.safetensors"
grep -q "resumed from $work/m.safetensors at step $saved" "$work/log" || { cat "$work/log"; fail "resume did not start at step $saved"; }
((status == 143)) || { cat "$work/log"; fail "SIGTERM: exit status $status, expected 143"; }
grep -q "^terminated: saved at step" "$work/log" || { cat "$work/log"; fail "SIGTERM: no 'saved at step' line"; }

# A second signal before the step ends leaves at once (status 128 + 2, no 'saved' line needed).
"${train[@]}" > /dev/null 2> "$work/log2" &
pid=$!
for ((i = 0; i < 600; ++i)); do grep -q "^step 5/" "$work/log2" 2> /dev/null && break; sleep 0.1; done
kill -INT "$pid" 2> /dev/null; kill -INT "$pid" 2> /dev/null
wait "$pid"
status=$?
((status == 130)) || fail "two SIGINTs: exit status $status, expected 130"
echo "interrupt: ok (SIGINT saved at step $saved, resumed, SIGTERM saved, a second signal exits)"
