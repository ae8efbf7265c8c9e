#!/usr/bin/env bash
# install-consumer test: installs the build into a temporary DESTDIR, compiles consumer.cpp
# against it with nothing but `pkg-config --cflags --libs crt-engine`, runs it, and compares
# its output with the known result.  Usage: check.sh <build root> <this folder>
set -euo pipefail
build_root=$1
here=$2
cxx=${CXX:-c++}
# A sanitizer build's static libraries need the sanitizer runtimes at link time, which the .pc
# files (written for ordinary builds) do not name: the consumer is built with the same option.
sanitize=${CRT_SANITIZE:-none}
extra=()
[[ $sanitize != none && -n $sanitize ]] && extra=("-fsanitize=$sanitize")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crt-install-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== meson install --destdir $tmp"
meson install -C "$build_root" --no-rebuild --destdir "$tmp" > "$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; exit 1; }

pc=$(find "$tmp" -name crt-engine.pc -print -quit)
[[ -n $pc ]] || { echo "crt-engine.pc was not installed"; cat "$tmp/install.log"; exit 1; }
# The .pc files are relocatable by default (prefix=${pcfiledir}/...), so they resolve inside
# the DESTDIR; for a build configured with -Dpkgconfig.relocatable=false, point prefix there.
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
pkg_config=(pkg-config)
# shellcheck disable=SC2016  # a literal ${pcfiledir}
if ! grep -qF 'prefix=${pcfiledir}' "$pc"; then
  pkg_config+=("--define-variable=prefix=$tmp$(sed -n 's/^prefix=//p' "$pc")")
fi
flags=$("${pkg_config[@]}" --cflags --libs crt-engine)
echo "== pkg-config --cflags --libs crt-engine: $flags"

# shellcheck disable=SC2086  # $flags is a list of compiler arguments
$cxx -std=c++20 -O1 "${extra[@]}" "$here/consumer.cpp" -o "$tmp/consumer" $flags

# Every installed header must compile on its own with only the installed Cflags (this catches
# a public header that includes one that is not installed).
mapfile -t pcs < <(cd "$PKG_CONFIG_PATH" && find . -name 'crt-*.pc' | sed 's|^\./||; s|\.pc$||' | sort)
all_cflags=$("${pkg_config[@]}" --cflags "${pcs[@]}")
echo "== headers (${pcs[*]}): $all_cflags"
include_dir=$("${pkg_config[@]}" --variable=includedir crt-engine)/crt
headers=$(cd "$include_dir" && find . -name '*.hpp' | sed 's|^\./||' | sort)
[[ -n $headers ]] || { echo "no headers installed"; exit 1; }
for h in $headers; do
  # shellcheck disable=SC2086
  echo "#include <$h>" | $cxx -std=c++20 -fsyntax-only -x c++ - $all_cflags ||
    { echo "installed header $h does not compile on its own"; exit 1; }
done
echo "$(echo "$headers" | wc -l) headers OK"

echo "== run"
output=$("$tmp/consumer")
echo "$output"
expected="loss -4.7500 grad_a[0] -0.5000 2.2500 -2.0000 ok"
if [[ $output != "$expected" ]]; then
  echo "expected: $expected"
  exit 1
fi
