#!/usr/bin/env bash
# meson test driver for one fuzz target's replay build: generates the seed corpus and runs
# the target on it and on the target's regression inputs.
#   bash run_seeds.sh REPLAY_BINARY TARGET_NAME SOURCE_DIR
set -euo pipefail
binary=$1 target=$2 source=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$source/make_seeds.py" "$work"
inputs=("$work/$target")
[[ -d $source/regressions/$target ]] && inputs+=("$source/regressions/$target")
"$binary" "${inputs[@]}"
