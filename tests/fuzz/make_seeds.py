#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: small valid (and nearly valid) inputs of each
format, so that the fuzzers start from the structure the readers expect. Nothing binary is
committed; run this to (re)create them.
    python3 make_seeds.py OUT_DIR      # writes OUT_DIR/<target>/<name>
"""
import json
import os
import struct
import sys


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype 'F32'|'F64', shape, values)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        blob = struct.pack("<%d%s" % (len(values), "f" if dtype == "F32" else "d"), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


CONFIG = {
    "crt.adaptive_cutoffs": "", "crt.d_head": "8", "crt.d_inner": "16", "crt.d_model": "16",
    "crt.dropatt": "0", "crt.dropout": "0.10000000000000001", "crt.emb_dropout": "0.10000000000000001",
    "crt.init_std": "0.02", "crt.kind": "crt", "crt.mem_len": "8", "crt.memory": "rnn", "crt.n_head": "2",
    "crt.n_layer": "1", "crt.ncgru_exact_every": "100", "crt.ncgru_negative_entries": "-1",
    "crt.ncgru_neumann_order": "2", "crt.pos_rnn_carry": "0", "crt.pos_rnn_residual": "0",
    "crt.position": "rnn", "crt.pre_ln": "0", "crt.rnn_cell": "gru", "crt.seg_len": "8",
    "crt.tie_embeddings": "1", "crt.vocab_size": "10000",
}


def config_text(**changes):
    c = dict(CONFIG, **changes)
    return "".join(f"{k}={v}\n" for k, v in sorted(c.items())).encode()


def seeds():
    yield "safetensors", "one_f32", safetensors([("w", "F32", [2, 3], [0.5, -1, 2, 3, 4, 5])])
    yield "safetensors", "f32_f64_meta", safetensors(
        [("a.bias", "F32", [4], [1, 2, 3, 4]), ("b", "F64", [2, 2], [1e-300, -2, 3.5, 0])],
        {"crt.kind": "crt", "trainer.step": "7"})
    yield "safetensors", "scalar_and_empty", safetensors([("s", "F32", [], [1.5]), ("e", "F64", [0, 3], [])])
    yield "safetensors", "metadata_only", safetensors([], {"k": "v"})
    yield "safetensors", "checkpoint_like", safetensors(
        [("param.emb.weight", "F32", [3, 2], [0.1] * 6), ("state.memory", "F32", [1, 2], [0, 0])],
        dict(CONFIG))
    yield "safetensors", "truncated", safetensors([("w", "F32", [4], [1, 2, 3, 4])])[:-3]

    yield "json", "object", b'{"a":[1,2.5e-3,-0,true,false,null],"b":{"c":"\\u00e9\\n"}}'
    yield "json", "numbers", b"[0,-1,1e308,-1e-308,123456789012345678901234567890,0.1,5e-324]"
    yield "json", "strings", '["", "\\"\\\\\\/\\b\\f\\n\\r\\t", "\\ud83d\\ude00", "ünïcödé"]'.encode()
    yield "json", "nested", b"[[[[[[[[[[{}]]]]]]]]]]"
    yield "json", "header", json.dumps({"__metadata__": {"x": "1"}, "w": {"dtype": "F32", "shape": [2],
                                        "data_offsets": [0, 8]}}).encode()

    yield "tokenizer", "ptb_like", b" the <unk> company said N shares\n of stock rose\n\n the end \n"
    yield "tokenizer", "unicode_tabs", "caf\u00e9\tna\u00efve  \u65e5\u672c\r\nword\n".encode()
    yield "tokenizer", "no_final_newline", b"a b c\nd e"
    yield "tokenizer", "blank_lines", b"\n\n\n"

    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    yield "sha256sums", "plain", f"{digest}  ptb.train.txt\n{digest.upper()}  ptb.valid.txt\n".encode()
    yield "sha256sums", "binary_mode_comment_crlf", f"# manifest\r\n{digest} *./data/x.bin\r\n".encode()
    yield "sha256sums", "malformed", f"{digest[:-1]}  short\n".encode()

    yield "config_metadata", "crt_gru", config_text()
    yield "config_metadata", "crt_ncgru", config_text(**{"crt.rnn_cell": "ncgru"})
    yield "config_metadata", "xl", config_text(**{"crt.kind": "xl", "crt.memory": "cache", "crt.position": "relative"})
    yield "config_metadata", "transformer", config_text(**{"crt.kind": "transformer", "crt.memory": "none",
                                                            "crt.position": "sinusoidal"})
    yield "config_metadata", "adaptive", config_text(**{"crt.adaptive_cutoffs": "2000,5000"})


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for target, name, data in seeds():
        folder = os.path.join(sys.argv[1], target)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
