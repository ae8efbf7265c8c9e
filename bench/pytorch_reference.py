#!/usr/bin/env python3
"""PyTorch reference for crt-bench: the same three language models at the same shapes, timed the
same way (streaming inference per segment at batch 1 with the memory/cache carried; one training
step at the training batch: forward, backward, clipping, AdamW), written as JSON records with
impl "pytorch".

Run by crt-bench as one worker per thread count (OMP/OpenBLAS/MKL thread variables set by it),
each point right after crt's run of it:
    pytorch_reference.py --serve --threads N     (one {job, point} JSON request per stdin line)
or on its own over a job file:
    pytorch_reference.py --job JOB.json --threads N --out OUT.json
Points name the token files crt-bench wrote (int32 Zipf streams), so both implementations read
the same tokens. Models, written here from the paper's description:
  transformer  post-LN blocks, absolute sinusoidal positions, causal attention
  xl           Transformer-XL relative attention (r_net, u/v biases, rel-shift) with a cache of
               the previous segment's hidden states per layer (mem_len = segment length)
  crt-gru      a position GRU over the embeddings, the memory vector prepended at position 0,
               a memory GRU over the final-layer outputs (nn.GRU for both)
  crt-ncgru    the same with NCGRU cells (orthogonal U_c = (I+A)^-1 (I-A) D, modReLU), stepped in
               Python, and the A-update (skew gradient, Adam, Neumann refresh) after each step
"""
import argparse
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- building blocks -----------------------------------------------------------------------

def sinusoids(n, d):
    """[n, d]: sin half then cos half (Transformer-XL layout), positions 0..n-1."""
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    inv = 1.0 / (10000.0 ** (torch.arange(0, d // 2, dtype=torch.float32) * 2.0 / d))
    ang = pos * inv.unsqueeze(0)
    table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    if d % 2:
        table = torch.cat([table, torch.zeros(n, 1)], dim=1)
    return table


def causal_mask(tq, tk, device=None):
    """True where query i (absolute position tk - tq + i) must not see key j."""
    prefix = tk - tq
    i = torch.arange(tq, device=device).unsqueeze(1)
    j = torch.arange(tk, device=device).unsqueeze(0)
    return j > i + prefix


class FeedForward(nn.Module):
    def __init__(self, d, inner, p):
        super().__init__()
        self.fc1, self.fc2, self.p = nn.Linear(d, inner), nn.Linear(inner, d), p

    def forward(self, x):
        h = F.dropout(F.relu(self.fc1(x)), self.p, self.training)
        return F.dropout(self.fc2(h), self.p, self.training)


class Attention(nn.Module):
    """Causal multi-head attention without biases; relative=True adds Transformer-XL's terms."""

    def __init__(self, d, heads, dh, relative):
        super().__init__()
        self.h, self.dh, self.w = heads, dh, heads * dh
        self.qkv = nn.Linear(d, 3 * self.w, bias=False)
        self.out = nn.Linear(self.w, d, bias=False)
        self.r_net = nn.Linear(d, self.w, bias=False) if relative else None

    def split(self, x):  # [B, T, W] -> [B, h, T, dh]
        return x.view(x.size(0), x.size(1), self.h, self.dh).transpose(1, 2)

    def forward(self, x, prefix=None, pos_emb=None, u=None, v=None):
        b, t, _ = x.shape
        if prefix is None:
            q, k, vv = self.qkv(x).split(self.w, dim=-1)
        else:
            wq, wkv = self.qkv.weight[: self.w], self.qkv.weight[self.w:]
            q = F.linear(x, wq)
            k, vv = F.linear(torch.cat([prefix, x], dim=1), wkv).split(self.w, dim=-1)
        q, k, vv = self.split(q), self.split(k), self.split(vv)
        tk = k.size(2)
        scale = 1.0 / math.sqrt(self.dh)
        if self.r_net is None:
            scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        else:
            # r rows by decreasing distance tk-1..0, then TXL's rel-shift puts them by key.
            r = self.r_net(pos_emb).view(tk, self.h, self.dh).permute(1, 0, 2)  # [h, tk, dh]
            ac = torch.matmul(q + u.view(1, self.h, 1, self.dh), k.transpose(-1, -2))
            bd = torch.matmul(q + v.view(1, self.h, 1, self.dh), r.transpose(-1, -2).unsqueeze(0))
            pad = bd.new_zeros(b, self.h, t, 1)
            bd = torch.cat([pad, bd], dim=-1).view(b, self.h, tk + 1, t)[:, :, 1:].reshape(b, self.h, t, tk)
            scores = (ac + bd) * scale
        scores = scores.masked_fill(causal_mask(t, tk, x.device), float("-inf"))
        o = torch.matmul(torch.softmax(scores, dim=-1), vv)
        return self.out(o.transpose(1, 2).reshape(b, t, self.w))


class Block(nn.Module):
    """Post-LN Transformer block (Transformer-XL's default)."""

    def __init__(self, d, heads, dh, inner, relative, p):
        super().__init__()
        self.attn = Attention(d, heads, dh, relative)
        self.ln_attn, self.ln_ff = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff, self.p = FeedForward(d, inner, p), p

    def forward(self, x, prefix=None, pos_emb=None, u=None, v=None):
        a = self.attn(x, prefix, pos_emb, u, v)
        h = self.ln_attn(x + F.dropout(a, self.p, self.training))
        return self.ln_ff(h + self.ff(h))


def modrelu(z, b):
    return torch.sign(z) * F.relu(z.abs() + b)


class NCGRU(nn.Module):
    """NCGRU cell: r, u gates as a GRU; candidate modReLU(W_c x + b + U_c (r*h)); U_c orthogonal,
    rewritten after each optimiser step from a skew-symmetric A (scaled Cayley transform)."""

    def __init__(self, d, negatives, order, exact_every):
        super().__init__()
        bound = 1.0 / math.sqrt(d)
        self.w_x = nn.Parameter(torch.cat([torch.empty(2 * d, d).uniform_(-bound, bound),
                                           torch.empty(d, d).uniform_(-0.01, 0.01)]))
        self.b_x = nn.Parameter(torch.cat([torch.empty(2 * d).uniform_(-bound, bound), torch.zeros(d)]))
        self.u_ru = nn.Parameter(torch.empty(2 * d, d).uniform_(-bound, bound))
        self.b_c = nn.Parameter(torch.zeros(d))
        self.d, self.order, self.exact_every = d, order, exact_every
        a = torch.zeros(d, d, dtype=torch.float64)
        theta = torch.rand(d // 2, dtype=torch.float64) * (math.pi / 2)
        s = -torch.sqrt((1 - torch.cos(theta)) / (1 + torch.cos(theta)))
        idx = torch.arange(0, 2 * (d // 2), 2)
        a[idx, idx + 1], a[idx + 1, idx] = s, -s
        self.a = a
        self.signs = torch.ones(d, dtype=torch.float64)
        self.signs[torch.randperm(d)[:negatives]] = -1.0
        self.a_inv = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + a)
        self.m, self.v = torch.zeros_like(a), torch.zeros_like(a)
        self.steps = 0
        self.u_c = nn.Parameter(torch.zeros(d, d))  # requires grad; not given to the optimiser
        self.rewrite()

    def rewrite(self):
        eye = torch.eye(self.d, dtype=torch.float64)
        with torch.no_grad():
            self.u_c.copy_(((2 * self.a_inv - eye) * self.signs.unsqueeze(0)).float())
        self.u_c.grad = None

    def step(self, x, h):
        d = self.d
        gx = F.linear(x, self.w_x, self.b_x)
        ru = torch.sigmoid(gx[:, : 2 * d] + h @ self.u_ru.t())
        r, u = ru[:, :d], ru[:, d:]
        c = modrelu(gx[:, 2 * d:] + (r * h) @ self.u_c.t(), self.b_c)
        return c + u * (h - c)

    def sequence(self, x, h):  # x: [B, T, d] -> all states [B, T, d], last state
        states = []
        for t in range(x.size(1)):
            h = self.step(x[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1), h

    @torch.no_grad()
    def after_step(self, lr):
        if self.u_c.grad is None:
            return
        g = self.u_c.grad.double()
        w = self.u_c.double().t() + torch.diag(self.signs)
        vmat = self.a_inv.t() @ (g @ w)
        grad = vmat.t() - vmat
        self.steps += 1
        t = self.steps
        self.m.mul_(0.9).add_(grad, alpha=0.1)
        self.v.mul_(0.999).addcmul_(grad, grad, value=0.001)
        a_old = self.a.clone()
        self.a -= lr * (self.m / (1 - 0.9 ** t)) / (torch.sqrt(self.v / (1 - 0.999 ** t)) + 1e-8)
        self.a = 0.5 * (self.a - self.a.t())
        if t % self.exact_every == 0:
            self.a_inv = torch.linalg.inv(torch.eye(self.d, dtype=torch.float64) + self.a)
        else:
            xm = -(self.a_inv @ (self.a - a_old))
            term, total = self.a_inv, self.a_inv
            for _ in range(self.order):
                term = xm @ term
                total = total + term
            self.a_inv = total
        self.rewrite()


class LanguageModel(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.kind, self.cell = p["kind"], p["rnn_cell"]
        d, v = p["d_model"], p["vocab"]
        self.d, self.mem_len, self.p, self.emb_p = d, p["mem_len"], p["dropout"], p["emb_dropout"]
        self.embedding = nn.Parameter(torch.randn(v, d) * 0.02)
        self.bias = nn.Parameter(torch.zeros(v))
        relative = self.kind == "xl"
        self.blocks = nn.ModuleList(Block(d, p["n_head"], p["d_head"], p["d_inner"], relative, self.p)
                                    for _ in range(p["layers"]))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if relative:
            self.r_w_bias = nn.Parameter(torch.randn(p["n_head"], p["d_head"]) * 0.02)
            self.r_r_bias = nn.Parameter(torch.randn(p["n_head"], p["d_head"]) * 0.02)
        if self.kind == "transformer":
            self.register_buffer("positions", sinusoids(p["seg_len"], d), persistent=False)
        if self.kind == "crt":
            if self.cell == "gru":
                self.pos_rnn, self.mem_rnn = nn.GRU(d, d, batch_first=True), nn.GRU(d, d, batch_first=True)
            else:
                args = (p["ncgru_negative_entries"], p["ncgru_neumann_order"], p["ncgru_exact_every"])
                self.pos_rnn, self.mem_rnn = NCGRU(d, *args), NCGRU(d, *args)
        self.cutoffs = list(p["cutoffs"])
        if self.cutoffs:
            self.cluster_weight = nn.Parameter(torch.zeros(len(self.cutoffs), d))
            self.cluster_bias = nn.Parameter(torch.zeros(len(self.cutoffs)))

    def trainable(self):
        return [q for n, q in self.named_parameters() if not n.endswith("u_c")]

    def initial_state(self, batch):
        if self.kind == "crt":
            return {"memory": torch.zeros(batch, self.d)}
        if self.kind == "xl":
            return {"cache": [None] * len(self.blocks)}
        return {}

    @staticmethod
    def state_bytes(state):
        total = 0
        for v in state.values():
            for t in (v if isinstance(v, list) else [v]):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total

    def rnn(self, which, x, h0):
        if self.cell == "gru":
            out, hn = which(x, h0.unsqueeze(0))
            return out, hn.squeeze(0)
        return which.sequence(x, h0)

    def forward(self, ids, state):  # ids: [B, T] -> hidden [B, T, d]; advances state
        b, t = ids.shape
        e = F.dropout(F.embedding(ids, self.embedding) * math.sqrt(self.d), self.emb_p, self.training)
        if self.kind == "transformer":
            z = e + self.positions[:t]
            for blk in self.blocks:
                z = blk(z)
            return F.dropout(z, self.p, self.training)
        if self.kind == "xl":
            cache = state["cache"]
            prefix = 0 if cache[0] is None else cache[0].size(1)
            pos = torch.flip(sinusoids(prefix + t, self.d), dims=[0])  # distances tk-1..0
            pos = F.dropout(pos, self.p, self.training)
            z, inputs = e, []
            for i, blk in enumerate(self.blocks):
                inputs.append(z)
                z = blk(z, cache[i], pos, self.r_w_bias, self.r_r_bias)
            new = []
            for i, x in enumerate(inputs):
                full = x.detach() if cache[i] is None else torch.cat([cache[i], x.detach()], dim=1)
                new.append(full[:, -self.mem_len:])
            state["cache"] = new
            return F.dropout(z, self.p, self.training)
        # CRT
        h, _ = self.rnn(self.pos_rnn, e, torch.zeros(b, self.d))
        z = torch.cat([state["memory"].unsqueeze(1), h], dim=1)
        for blk in self.blocks:
            z = blk(z)
        y = z[:, 1:]
        _, state["memory"] = self.rnn(self.mem_rnn, y, state["memory"])
        return F.dropout(y, self.p, self.training)

    def loss(self, hidden, targets):  # hidden [B, T, d], targets [B, T] -> mean NLL
        hid, tgt = hidden.reshape(-1, self.d), targets.reshape(-1)
        if not self.cutoffs:
            return F.cross_entropy(F.linear(hid, self.embedding, self.bias), tgt)
        short = self.cutoffs[0]
        bounds = self.cutoffs + [self.embedding.size(0)]
        head_w = torch.cat([self.embedding[:short], self.cluster_weight])
        head_b = torch.cat([self.bias[:short], self.cluster_bias])
        head_t = tgt.clone()
        n = tgt.numel()
        tails = []
        for c in range(len(self.cutoffs)):
            rows = ((tgt >= bounds[c]) & (tgt < bounds[c + 1])).nonzero().squeeze(1)
            head_t[rows] = short + c
            if rows.numel():
                tails.append((c, rows))
        total = F.cross_entropy(F.linear(hid, head_w, head_b), head_t, reduction="sum")
        for c, rows in tails:
            lo, hi = bounds[c], bounds[c + 1]
            logits = F.linear(hid[rows], self.embedding[lo:hi], self.bias[lo:hi])
            total = total + F.cross_entropy(logits, tgt[rows] - lo, reduction="sum")
        return total / n

    def after_step(self, lr):
        if self.kind == "crt" and self.cell == "ncgru":
            self.pos_rnn.after_step(lr)
            self.mem_rnn.after_step(lr)


def detach_state(state):
    for k, v in state.items():
        state[k] = [None if t is None else t.detach() for t in v] if isinstance(v, list) else v.detach()


# ---- measurement ---------------------------------------------------------------------------

def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timing_done(ms, reps, job):
    """All repetitions in, or at least 3 that used the run's time budget (as crt-bench)."""
    return len(ms) >= reps or (len(ms) >= 3 and sum(ms) >= job.get("max_run_seconds", 1e9) * 1e3)


def stats(ms):
    s = sorted(ms)

    def q(p):
        pos = p * (len(s) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (pos - lo) * (s[hi] - s[lo])

    return {"reps": len(s), "latency_ms_median": q(0.5), "latency_ms_min": s[0], "latency_ms_max": s[-1],
            "latency_ms_p25": q(0.25), "latency_ms_p75": q(0.75)}


def base_record(p, model, mode, batch, threads):
    params = model.trainable()
    return {"impl": "pytorch", "model": p["model"], "config": p["config"], "layers": p["layers"],
            "d_model": p["d_model"], "vocab": p["vocab"], "adaptive_softmax": bool(p["cutoffs"]),
            "seg_len": p["seg_len"], "batch": batch, "threads": threads, "mode": mode,
            "flops_closed_form": None, "flops_counted": None,
            "param_count": sum(q.numel() for q in params),
            "param_bytes": sum(q.numel() * q.element_size() for q in params),
            "engine_peak_bytes": None, "note": "torch " + torch.__version__}


def run_infer(p, job, tokens, threads):
    torch.manual_seed(1111)
    model = LanguageModel(p).eval()
    t = p["seg_len"]
    rec = base_record(p, model, "infer", 1, threads)
    rss_reset = reset_peak_rss()
    state = model.initial_state(1)
    ms = []
    with torch.inference_mode():
        for i in range(job["infer_warmup"] + job["infer_reps"]):
            seg = tokens[i * t: i * t + t + 1]
            ids, tgt = seg[:-1].view(1, t), seg[1:].view(1, t)
            t0 = time.perf_counter()
            model.loss(model(ids, state), tgt)
            elapsed = (time.perf_counter() - t0) * 1e3
            if i >= job["infer_warmup"]:
                ms.append(elapsed)
            if timing_done(ms, job["infer_reps"], job):
                break
    rec.update(stats(ms))
    rec["cached"] = t if p["kind"] == "xl" else 0
    rec["state_bytes"] = LanguageModel.state_bytes(state)
    return finish(rec, t, rss_reset)


def run_train(p, job, tokens, threads):
    torch.manual_seed(1111)
    model = LanguageModel(p).train()
    t, b, bptt = p["seg_len"], job["train_batch"], job["bptt_segments"]
    rec = base_record(p, model, "train", b, threads)
    rec["bptt_segments"] = bptt
    rss_reset = reset_peak_rss()
    params = model.trainable()
    opt = torch.optim.AdamW(params, lr=job["lr"], weight_decay=job["weight_decay"])
    length = tokens.numel() // b
    columns = tokens[: length * b].view(b, length)
    state, pos, ms = model.initial_state(b), 0, []
    for i in range(job["train_warmup"] + job["train_reps"]):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total, count = 0.0, 0
        for _ in range(bptt):
            ids, tgt = columns[:, pos: pos + t], columns[:, pos + 1: pos + t + 1]
            pos += t
            n = tgt.numel()
            total = total + model.loss(model(ids, state), tgt) * n
            count += n
        loss = total / count
        loss.backward()
        detach_state(state)
        torch.nn.utils.clip_grad_norm_(params, job["clip"])
        opt.step()
        model.after_step(job["lr"])
        elapsed = (time.perf_counter() - t0) * 1e3
        if i >= job["train_warmup"]:
            ms.append(elapsed)
        if timing_done(ms, job["train_reps"], job):
            break
    rec.update(stats(ms))
    rec["cached"] = t if p["kind"] == "xl" else 0
    one = model.initial_state(1)
    with torch.no_grad():
        model.eval()(columns[:1, :t], one)
    rec["state_bytes"] = LanguageModel.state_bytes(one)
    return finish(rec, b * t * bptt, rss_reset)


def finish(rec, tokens_per_run, rss_reset):
    med = rec["latency_ms_median"]
    rec["tokens_per_s"] = tokens_per_run / (med / 1e3) if med > 0 else 0.0
    rec["gflops_per_s"] = None
    rec["peak_rss_bytes"] = peak_rss_bytes()
    if not rss_reset:
        rec["note"] += "; peak RSS covers the whole process"
    return rec


_tokens = {}


def run_point(p, job, threads):
    """All modes of one grid point -> records."""
    path = p["token_file"]
    if path not in _tokens:
        with open(path, "rb") as f:
            _tokens[path] = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long()
    tokens = _tokens[path]
    records = []
    for mode in p["modes"]:
        if mode == "infer":
            rec = run_infer(p, job, tokens[: p["infer_tokens"]], threads)
        else:
            rec = run_train(p, job, tokens[: p["train_tokens"]], threads)
        records.append(rec)
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--serve", action="store_true",
                    help="read one {job, point} JSON request per stdin line, answer one JSON line each")
    ap.add_argument("--job", help="a job file {points: [...], <job fields>} to run in one go")
    ap.add_argument("--out", help="with --job: where to write {records: [...]}")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        sys.stdout.write(json.dumps({"ready": True, "torch": torch.__version__}) + "\n")
        sys.stdout.flush()
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                answer = {"records": run_point(request["point"], request["job"], args.threads)}
            except Exception as e:  # reported to crt-bench, which goes on with the next point
                answer = {"error": "%s: %s" % (type(e).__name__, e)}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
        return
    if not args.job or not args.out:
        ap.error("give --serve, or --job and --out")
    with open(args.job) as f:
        job = json.load(f)
    records = []
    for p in job["points"]:
        for rec in run_point(p, job, args.threads):
            print("  [pytorch] %-9s %-12s seg %4d  %d thr  %-5s  %9.2f ms" % (
                p["config"], p["model"], p["seg_len"], args.threads, rec["mode"], rec["latency_ms_median"]),
                file=sys.stderr, flush=True)
            records.append(rec)
    with open(args.out, "w") as f:
        json.dump({"records": records}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
