#!/usr/bin/env bash
# Runs crt-bench on malformed arguments and checks that each exits non-zero with a message
# naming the flag and the value (empty list items, integers out of range or past 64 bits).
#   bash bad_args.sh CRT_BENCH
set -uo pipefail
bench=$1
failures=0 cases=0
expect() {  # expect TEXT -- args...: a non-zero exit whose stderr contains TEXT
  local text=$1 err
  shift 2
  cases=$((cases + 1))
  err=$("$bench" --no-pytorch --out /nonexistent/never-written "$@" 2>&1 > /dev/null)
  local got=$?
  if ((got == 0)) || ! grep -qF -- "$text" <<< "$err"; then
    failures=$((failures + 1))
    echo "FAIL: crt-bench $* -> status $got, output: $err" >&2
  fi
}
expect "option '--seg' has an empty item in '1,,2'" -- --seg 1,,2
expect "option '--configs' has an empty item in ','" -- --configs ,
expect "option '--models' has an empty item in ''" -- --models ''
expect "option '--modes' has an empty item" -- --modes infer,
expect "option '--batch' needs an integer in [1, 65536], got '9223372036854775807'" -- --batch 9223372036854775807
expect "option '--bptt' needs an integer in [1, 1024]" -- --bptt 99999999999999999999
expect "option '--reps-train' needs an integer in [1, 1048576]" -- --reps-train 9223372036854775000
expect "option '--reps-infer' needs an integer in [1, 1048576], got '0'" -- --reps-infer 0
expect "option '--threads' needs an integer in [1, 1024], got '4294967297'" -- --threads 4294967297
expect "option '--batch' needs an integer in [1, 65536], got '4,8'" -- --batch 4,8
expect "option '--seg' needs an integer in [1, 65536], got '-3'" -- --seg -3
expect "option '--max-run-seconds' needs a number in [0.001, 1e+06], got 'inf'" -- --max-run-seconds inf
expect "unknown option '--quick'" -- --quick
echo "bench-bad-args: $((cases - failures)) of $cases cases exit non-zero and name the problem"
((failures == 0))
