#!/usr/bin/env bash
# crt entry point (Debian 12; installs missing packages with apt-get when run as root).
#   bash run.sh main [crt-bench flags]    build (release) and run the main job: the benchmark
#                                         suite's quick mode (FLOPs, latency, memory; a few minutes)
#   bash run.sh demo [train_demo flags]   build and run the training demo (about a minute)
#   bash run.sh test [meson test args]    build (release) and run every test (meson test)
#   bash run.sh build                     configure and build only
# The build directory is ./build (override with CRT_BUILD_DIR). The data folder is
# ../shared/datasets (override with CRT_DATA_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

packages=(meson ninja-build pkg-config g++ libxsimd-dev libtbb-dev doctest-dev libbenchmark-dev)
build_dir=${CRT_BUILD_DIR:-build}

# Installs whichever of the given Debian packages are missing (apt-get update only then).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "run.sh: installing missing packages: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo > /dev/null || { echo "run.sh: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  ensure_packages "${packages[@]}"
  if [[ ! -f $build_dir/build.ninja ]]; then
    meson setup "$build_dir" --buildtype=release
  fi
  ninja -C "$build_dir"
}

command=${1:-}
(($# > 0)) && shift
case $command in
  main)
    build
    exec "$build_dir/bench/crt-bench" "$@"
    ;;
  demo)
    build
    exec "$build_dir/crt/train_demo" "$@"
    ;;
  test)
    build
    exec meson test -C "$build_dir" --print-errorlogs "$@"
    ;;
  build)
    build
    ;;
  *)
    echo "usage: bash run.sh main|demo|test|build [args]" >&2
    exit 2
    ;;
esac
