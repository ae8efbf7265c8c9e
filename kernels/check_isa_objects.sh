#!/bin/sh
# Checks one kernels static library (Note [ISA objects] in isa.hpp):
#   check_isa_objects.sh LIB REGISTER KIND [TAG]
# REGISTER: zmm = must use zmm; ymm = must use ymm and no zmm; none = no ymm or zmm; any = skip.
# KIND: isa = also fail on weak symbols not specialised on TAG, the library's own xsimd arch tag
# (the linker keeps one copy of a weak symbol, which could be another ISA's: even a symbol
# specialised on another tag, e.g. an avx2 helper instantiated in the avx512 library, would
# collide with that ISA's own copy); baseline = register check only.
set -eu
lib=$1 reg=$2 kind=$3 tag=${4:-}
fail=0
disasm=$(objdump -d --no-show-raw-insn "$lib") || { echo "FAIL: objdump cannot read $lib"; exit 1; }
count() { printf '%s\n' "$disasm" | grep -c "%$1" || true; }
zmm=$(count zmm)
ymm=$(count ymm)
case $reg in
  zmm) [ "$zmm" -gt 0 ] || { echo "FAIL: $lib has no zmm instructions"; fail=1; } ;;
  ymm) [ "$ymm" -gt 0 ] || { echo "FAIL: $lib has no ymm instructions"; fail=1; }
       [ "$zmm" -eq 0 ] || { echo "FAIL: $lib has $zmm zmm instructions"; fail=1; } ;;
  none) [ "$ymm" -eq 0 ] && [ "$zmm" -eq 0 ] || {
          echo "FAIL: $lib has $ymm ymm and $zmm zmm instructions"; fail=1; } ;;
  any) ;;
  *) echo "unknown register class $reg"; exit 2 ;;
esac
echo "$lib: $zmm zmm, $ymm ymm instructions"
if [ "$kind" = isa ]; then
  symbols=$(nm -C --defined-only "$lib") || { echo "FAIL: nm cannot read $lib"; exit 1; }
  [ -n "$tag" ] || { echo "usage: check_isa_objects.sh LIB REGISTER isa TAG"; exit 2; }
  stray=$(printf '%s\n' "$symbols" | grep -E ' [WVu] ' | grep -v -F "$tag" |
          grep -v -E 'DW\.ref\.__gxx_personality_v0' || true)
  if [ -n "$stray" ]; then
    echo "FAIL: weak symbols not specialised on $tag in $lib:"
    echo "$stray"
    fail=1
  fi
fi
exit $fail
