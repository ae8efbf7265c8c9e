#!/usr/bin/env bash
# Runs the crt tool on malformed arguments and files and checks that each exits non-zero with
# a message naming the problem (the flag, the file, the tensor), never a crash or a silent pass.
#   bash bad_input.sh CRT
set -uo pipefail
crt=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 cases=0
tiny=(--layers 1 --d-model 16 --heads 2 --d-inner 16 --seg-len 8 --batch 4 --no-final-eval --log-every 1)

# expect STATUS TEXT -- command...: the command exits with STATUS and its stderr contains TEXT.
expect() {
  local status=$1 text=$2
  shift 3
  cases=$((cases + 1))
  "$@" > "$work/out" 2> "$work/err"
  local got=$?
  if ((got != status)) || ! grep -qF -- "$text" "$work/err"; then
    failures=$((failures + 1))
    echo "FAIL: $* -> status $got (want $status), stderr:" >&2
    sed 's/^/    /' "$work/err" | head -5 >&2
  fi
}

train=("$crt" train "${tiny[@]}" --steps 1 --out "$work/m.safetensors")
expect 2 "'--threads' needs an integer in [0, 1024], got '4294967297'" -- "${train[@]}" --threads 4294967297
expect 2 "'--seg-len' needs an integer" -- "${train[@]}" --seg-len 4294967312
expect 2 "'--epochs' needs a number" -- "$crt" train "${tiny[@]}" --epochs 1e18 --out "$work/m.safetensors"
expect 2 "'--epochs' needs a number" -- "$crt" train "${tiny[@]}" --epochs 0 --out "$work/m.safetensors"
expect 2 "'--epochs' needs a number" -- "$crt" train "${tiny[@]}" --epochs nan --out "$work/m.safetensors"
expect 2 "'--log-every' needs an integer" -- "${train[@]}" --log-every 0
expect 2 "'--eval-every' needs an integer" -- "${train[@]}" --eval-every -1
expect 2 "'--save-every' needs an integer" -- "${train[@]}" --save-every -1
expect 2 "'--eval-segments' needs an integer" -- "${train[@]}" --eval-segments -1
expect 2 "'--weight-decay' needs a number" -- "${train[@]}" --weight-decay 1e18
expect 2 "'--lr' needs a number" -- "${train[@]}" --lr abc
expect 2 "'--batch' needs an integer" -- "${train[@]}" --batch ''
expect 2 "'--adaptive' needs comma-separated integers" -- "${train[@]}" --adaptive ''
expect 2 "'--adaptive' needs comma-separated integers" -- "${train[@]}" --adaptive 20000,junk
expect 2 "is a directory" -- "$crt" train "${tiny[@]}" --steps 1 --out "$work"
expect 2 "--out must not be empty" -- "$crt" train "${tiny[@]}" --steps 1 --out ''
expect 1 "would need about" -- "${train[@]}" --d-model 1000000 --heads 1
expect 1 "would need about" -- "${train[@]}" --seg-len 100000 --batch 300000
expect 1 "cannot write metrics file '/dev/full'" -- "${train[@]}" --metrics /dev/full

# A valid checkpoint, then broken copies of it.
"${train[@]}" > /dev/null 2>&1 || { echo "FAIL: the tiny training run did not work" >&2; exit 1; }
mkfifo "$work/fifo.safetensors"
expect 1 "not a regular file" -- timeout 20 "$crt" eval --checkpoint "$work/fifo.safetensors"
expect 1 "not a regular file" -- "$crt" eval --checkpoint "$work"
expect 2 "'--segments' needs an integer" -- "$crt" eval --checkpoint "$work/m.safetensors" --segments -1
expect 2 "'--top-k' needs an integer" -- "$crt" generate --checkpoint "$work/m.safetensors" --top-k 4294967297
python3 - "$work/m.safetensors" "$work/nan.safetensors" <<'PY'
import json, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
begin = 8 + n + header["param.output.bias"]["data_offsets"][0] if "param.output.bias" in header else None
name = "param.output.bias" if begin is not None else sorted(k for k in header if k.startswith("param."))[0]
begin = 8 + n + header[name]["data_offsets"][0]
data[begin:begin + 4] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(data)
print(name)
PY
expect 1 "non-finite" -- "$crt" eval --checkpoint "$work/nan.safetensors"
expect 1 "non-finite" -- "$crt" generate --checkpoint "$work/nan.safetensors" --tokens 3

python3 - "$work/m.safetensors" "$work/step.safetensors" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert b'"trainer.step":"1"' in data
open(sys.argv[2], "wb").write(data.replace(b'"trainer.step":"1"', b'"trainer.step":"2"'))
PY
expect 1 "disagrees with its metadata 'trainer.step'" -- "$crt" train "${tiny[@]}" --steps 1 --resume "$work/step.safetensors" --out "$work/r.safetensors"

# Finite but huge output biases (+-3e38) make the loss overflow at the next step: training stops
# naming the step without writing a checkpoint, and --check-finite names the op.
python3 - "$work/m.safetensors" "$work/huge.safetensors" <<'PY'
import json, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", data[:8])[0]
begin, end = json.loads(data[8:8 + n])["param.output.bias"]["data_offsets"]
count = (end - begin) // 4
data[8 + n + begin:8 + n + end] = struct.pack("<%df" % count, *[(-3e38 if i % 2 else 3e38) for i in range(count)])
assert data.count(b'"train.steps":"1"') == 1  # one step more than it was trained for
open(sys.argv[2], "wb").write(bytes(data).replace(b'"train.steps":"1"', b'"train.steps":"2"'))
PY
resume_huge=("$crt" train "${tiny[@]}" --steps 2 --resume "$work/huge.safetensors" --out "$work/diverged.safetensors")
expect 1 "loss is inf at step 2; stopping before the parameters are changed" -- "${resume_huge[@]}"
expect 1 "the output of op 'cross_entropy'" -- "${resume_huge[@]}" --check-finite
cases=$((cases + 1))
[[ ! -e $work/diverged.safetensors ]] || { failures=$((failures + 1)); echo "FAIL: a diverged run wrote a checkpoint" >&2; }

echo "bad-input: $((cases - failures)) of $cases cases exit non-zero and name the problem"
((failures == 0))
