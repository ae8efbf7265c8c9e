#!/usr/bin/env python3
"""Independent, stdlib-only safetensors reader (struct + json), written from the format spec.

  safetensors_reader.py FILE            validate FILE, print names/dtypes/shapes/first values
  safetensors_reader.py --interop EXE   run the doctest executable EXE to write the engine's
                                        fixture, check it value by value, then write a file here
                                        and have EXE load it (its skipped "interop" cases)
Exits non-zero on any deviation from the spec.
"""
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

# dtype -> (struct format or None for raw bytes, element size in bytes)
DTYPES = {
    "BOOL": ("?", 1), "U8": ("B", 1), "I8": ("b", 1), "F8_E5M2": (None, 1), "F8_E4M3": (None, 1),
    "I16": ("h", 2), "U16": ("H", 2), "F16": ("e", 2), "BF16": (None, 2),
    "I32": ("i", 4), "U32": ("I", 4), "F32": ("f", 4),
    "I64": ("q", 8), "U64": ("Q", 8), "F64": ("d", 8),
}
MAX_HEADER = 100 * 1024 * 1024


class SpecError(Exception):
    pass


def _object_without_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise SpecError(f"duplicate JSON key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise SpecError(f"non-standard JSON constant {name}")


def _is_uint(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _decode(dtype, raw, count):
    fmt, size = DTYPES[dtype]
    if fmt is not None:
        return list(struct.unpack(f"<{count}{fmt}", raw))
    if dtype == "BF16":  # upper half of an F32
        return [struct.unpack("<f", b"\x00\x00" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    return list(raw)  # F8 variants: raw bytes


def read_safetensors(path):
    """Returns (header_length, metadata, [(name, dtype, shape, (begin, end), values)] in header order)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise SpecError(f"{len(data)} bytes, shorter than the 8-byte length prefix")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise SpecError(f"header length {n} exceeds the {len(data) - 8} bytes that follow")
    if n > MAX_HEADER:
        raise SpecError(f"header length {n} above {MAX_HEADER}")
    try:
        text = data[8:8 + n].decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise SpecError(f"header is not UTF-8: {e}") from None
    if not text.startswith("{"):
        raise SpecError("header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SpecError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SpecError("header is not a JSON object")

    metadata = {}
    if "__metadata__" in header:
        meta = header["__metadata__"]
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise SpecError("__metadata__ is not an object of strings")
        metadata = meta
    buffer = data[8 + n:]
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise SpecError(f"tensor name {name!r} is not valid Unicode") from None
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SpecError(f"entry {name!r} must have exactly dtype, shape, data_offsets: {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise SpecError(f"entry {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise SpecError(f"entry {name!r}: shape {shape!r} is not a list of non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
            raise SpecError(f"entry {name!r}: data_offsets {offsets!r} are not two non-negative integers")
        begin, end = offsets
        count = math.prod(shape)
        if end < begin or end - begin != count * DTYPES[dtype][1]:
            raise SpecError(f"entry {name!r}: data_offsets {offsets} do not hold {dtype} {shape}")
        entries.append((name, dtype, shape, (begin, end)))

    covered = 0
    for name, _, _, (begin, end) in sorted(entries, key=lambda e: e[3]):
        if begin != covered:
            raise SpecError(f"entry {name!r} starts at {begin}, expected {covered} (gap or overlap)")
        covered = end
    if covered != len(buffer):
        raise SpecError(f"data buffer is {len(buffer)} bytes but the tensors cover {covered}")

    tensors = []
    for name, dtype, shape, (begin, end) in entries:
        values = _decode(dtype, buffer[begin:end], math.prod(shape))
        tensors.append((name, dtype, shape, (begin, end), values))
    return n, metadata, tensors


def print_file(path, n, metadata, tensors):
    print(f"{path}: header {n} bytes, {len(tensors)} tensors, metadata {metadata!r}")
    for name, dtype, shape, (begin, end), values in tensors:
        print(f"  {name!r} {dtype} {shape} [{begin}, {end}) first values {values[:4]!r}")


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def check(cond, what):
    if not cond:
        raise SpecError(what)


def check_engine_fixture(path):
    """The file written by test_safetensors.cpp's interop_tensors(), checked bit for bit."""
    n, metadata, tensors = read_safetensors(path)
    print_file(path, n, metadata, tensors)
    check(n % 8 == 0, f"engine header length {n} is not a multiple of 8")
    with open(path, "rb") as f:
        header = f.read(8 + n)[8:].decode("utf-8")
    check(header.rstrip(" ").endswith("}"), "engine header padding is not spaces")
    check(metadata == {"format": "crt", "note": "h\u00e9llo \"q\"\n"}, f"metadata {metadata!r}")

    w = [f32(i * 0.25 - 1.0) for i in range(6)]
    expected = {
        "empty": ("F32", [0, 3], []),
        "gamma": ("F64", [4], [1.0 / (i + 1) for i in range(4)]),
        "layer.weight": ("F32", [2, 3], w),
        "layer.weight_t": ("F32", [3, 2], [w[c * 3 + r] for r in range(3) for c in range(2)]),
        "step": ("F64", [], [7.0]),
    }
    names = [t[0] for t in tensors]
    check(names == sorted(expected, key=lambda s: s.encode("utf-8")), f"names {names} not sorted / not expected")
    offsets = [t[3] for t in tensors]
    check(offsets == sorted(offsets), "tensors are not stored in name order")
    for name, dtype, shape, _, values in tensors:
        want_dtype, want_shape, want_values = expected[name]
        check((dtype, shape) == (want_dtype, want_shape), f"{name}: {dtype} {shape}, expected {want_dtype} {want_shape}")
        fmt = DTYPES[dtype][0]
        got_bits = struct.pack(f"<{len(values)}{fmt}", *values)
        want_bits = struct.pack(f"<{len(want_values)}{fmt}", *want_values)
        check(got_bits == want_bits, f"{name}: values {values} != {want_values}")
    print("engine fixture: all names, dtypes, shapes, values and metadata match")


def write_python_file(path):
    """Unsorted keys, metadata in the middle, \\u escapes, spaces, no 8-byte padding."""
    w = struct.pack("<4f", 0.5, -1.5, 2.25, 1e-3)
    d = struct.pack("<3d", 1.0 / 3.0, -2.0, 1e300)
    s = struct.pack("<f", -4.0)
    header = {
        "w\u00e9ight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [28, 44]},
        "__metadata__": {"writer": "python", "caf\u00e9": "\U0001F600"},
        "double": {"data_offsets": [0, 24], "shape": [3], "dtype": "F64"},
        "s": {"shape": [], "dtype": "F32", "data_offsets": [24, 28]},
    }
    text = json.dumps(header, ensure_ascii=True).encode("ascii")
    if len(text) % 8 == 0:
        text += b"\n"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + d + s + w)


def self_test_rejections(path, workdir):
    """The reader itself must refuse damaged copies of a valid file."""
    with open(path, "rb") as f:
        good = f.read()
    (n,) = struct.unpack("<Q", good[:8])
    bad = os.path.join(workdir, "damaged.safetensors")
    damaged = {
        "truncated data": good[:-1],
        "trailing bytes": good + b"x",
        "truncated header": good[:8 + n - 1],
        "short prefix": good[:5],
        "broken JSON": good[:8] + b"[" + good[9:],
    }
    for what, data in damaged.items():
        with open(bad, "wb") as f:
            f.write(data)
        try:
            read_safetensors(bad)
        except SpecError:
            continue
        raise SpecError(f"reader accepted a file with {what}")
    print("reader refuses damaged files")


def run_doctest(exe, pattern, env_name, env_value):
    env = dict(os.environ, **{env_name: env_value})
    proc = subprocess.run([exe, "--no-skip", f"--test-case={pattern}"], env=env,
                          capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    check(proc.returncode == 0, f"{exe} {pattern} exited with {proc.returncode}")
    check(re.search(r"test cases:\s*1\s*\|\s*1 passed", proc.stdout) is not None, f"{pattern}: did not run exactly one passing case")


def interop(exe):
    with tempfile.TemporaryDirectory(prefix="crt_safetensors_interop_") as workdir:
        fixture = os.path.join(workdir, "engine.safetensors")
        run_doctest(exe, "safetensors interop: write*", "CRT_SAFETENSORS_FIXTURE", fixture)
        check_engine_fixture(fixture)
        self_test_rejections(fixture, workdir)
        pyfile = os.path.join(workdir, "python.safetensors")
        write_python_file(pyfile)
        print_file(pyfile, *read_safetensors(pyfile))
        run_doctest(exe, "safetensors interop: load*", "CRT_SAFETENSORS_PYFILE", pyfile)
        print("engine loads the Python-written file")


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "--interop":
            interop(argv[2])
        elif len(argv) == 2 and not argv[1].startswith("-"):
            print_file(argv[1], *read_safetensors(argv[1]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (SpecError, OSError) as e:
        print(f"safetensors_reader: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
