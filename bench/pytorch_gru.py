#!/usr/bin/env python3
"""PyTorch side of bench/gru_compare.sh: nn.GRUCell steps and nn.GRU segments at the shapes of
bench_gru, timed the same way (median of repetitions after a warm-up), printed as JSON lines
{"name": "<kind>/pytorch/<d>/<batch>[/<steps>]/<threads>", "us": median microseconds}.
Kinds: gru_cell (one step, inference), gru_seq (a segment, inference), gru_seq_train (forward +
backward of the sum of all states plus the last state). Run one process per thread count."""
import argparse
import json
import statistics
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--dims", default="256,410")
parser.add_argument("--batches", default="1,16")
parser.add_argument("--steps", default="17,35,70")
parser.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)


def median_us(fn):
    for _ in range(3):
        fn()
    start, times = time.perf_counter(), []
    while time.perf_counter() - start < args.seconds or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def emit(name, us):
    print(json.dumps({"name": name, "us": round(us, 3)}), flush=True)


for d in map(int, args.dims.split(",")):
    cell, gru = torch.nn.GRUCell(d, d), torch.nn.GRU(d, d, batch_first=True)
    for b in map(int, args.batches.split(",")):
        x, h = torch.randn(b, d), torch.randn(b, d)
        with torch.inference_mode():
            emit(f"gru_cell/pytorch/{d}/{b}/{args.threads}", median_us(lambda: cell(x, h)))
        for n in map(int, args.steps.split(",")):
            xs, h0 = torch.randn(b, n, d), torch.randn(1, b, d)
            with torch.inference_mode():
                emit(f"gru_seq/pytorch/{d}/{b}/{n}/{args.threads}", median_us(lambda: gru(xs, h0)))
            xs.requires_grad_(True)

            def train():
                out, last = gru(xs, h0)
                (out.sum() + last.sum()).backward()
            emit(f"gru_seq_train/pytorch/{d}/{b}/{n}/{args.threads}", median_us(train))
