#!/usr/bin/env python3
"""PyTorch CPU training throughput on the shapes of docs/BENCHMARKS.md, for the
side-by-side comparison with `bitnet-train bench` (issue 12).

The same work per step as ours: pre-LayerNorm blocks, GELU MLP, tied embeddings, AdamW,
gradient clipping; tokens/s over whole optimizer steps (median step). Modes:
  fp       nn.Linear everywhere;
  binary   BitLinear: its own LayerNorm, per-token absmax int8 activations, weights
           centred and Sign-binarized, scaled by mean |W|, straight-through estimator;
  ternary  the same with absmean ternary weights;
  int4     the Hadamard quantizer (block-diagonal Walsh-Hadamard as a matrix product)
           and LSQ INT4 fake quantization of activations and weights with learned steps,
           FP32 products (PyTorch has no INT4 CPU GEMM) and an FP32 backward, i.e. our
           `--int4-backward exact`.
It uses rotary-free learned positions; the difference in work is negligible.

  python3 scripts/pytorch-reference.py --mode binary --dim 256 --layers 4 --heads 4 \
      --ffn-dim 1024 --context 256 --batch 8 --steps 15
Prints one JSON line.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def ste(x, q):
    """q in the forward pass, the gradient of x in the backward."""
    return x + (q - x).detach()


def activation_int8(x):
    gamma = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return ste(x, (x * 127 / gamma).round().clamp(-127, 127) * gamma / 127)


def weight_binary(w):
    beta = w.abs().mean()
    return ste(w, torch.sign(w - w.mean()) * beta)


def weight_ternary(w):
    beta = w.abs().mean()
    return ste(w, (w / (beta + 1e-6)).round().clamp(-1, 1) * beta)


class LSQ(torch.autograd.Function):
    """INT4 fake quantization with a learned step (Esser et al. 2020)."""

    @staticmethod
    def forward(ctx, x, step):
        v = x / step
        ctx.save_for_backward(v, step)
        return v.round().clamp(-8, 7) * step

    @staticmethod
    def backward(ctx, grad):
        v, step = ctx.saved_tensors
        inside = (v >= -8.5) & (v <= 7.5)
        g = 1 / math.sqrt(v.numel() * 7)
        dstep = torch.where(inside, v.round() - v, v.round().clamp(-8, 7)) * grad
        return grad * inside, (dstep.sum() * g).reshape(step.shape)


def hadamard(block):
    h = torch.ones(1, 1)
    while h.shape[0] < block:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(block)


class Projection(nn.Module):
    def __init__(self, mode, i, o, block):
        super().__init__()
        self.mode = mode
        self.weight = nn.Parameter(torch.randn(o, i) * 0.02)
        if mode in ("binary", "ternary"):
            self.norm = nn.LayerNorm(i)
        if mode == "int4":
            self.register_buffer("h", hadamard(block))
            self.block = block
            self.input_step = nn.Parameter(torch.tensor(0.1))
            self.weight_step = nn.Parameter(torch.tensor(0.01))

    def transform(self, x):
        shape = x.shape
        return (x.reshape(-1, self.block) @ self.h).reshape(shape)

    def forward(self, x):
        if self.mode == "fp":
            return F.linear(x, self.weight)
        if self.mode == "int4":
            xq = LSQ.apply(self.transform(x), self.input_step)
            wq = LSQ.apply(self.transform(self.weight), self.weight_step)
            return F.linear(xq, wq)
        x = activation_int8(self.norm(x))
        w = weight_binary(self.weight) if self.mode == "binary" else weight_ternary(self.weight)
        return F.linear(x, w)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, f = a.dim, a.ffn_dim
        self.heads = a.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (Projection(a.mode, d, d, a.block) for _ in range(4))
        self.up, self.down = Projection(a.mode, d, f, a.block), Projection(a.mode, f, d, a.block)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(b, t, self.heads, d // self.heads).transpose(1, 2) for p in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embedding = nn.Embedding(a.vocab, a.dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.position = nn.Parameter(torch.zeros(a.context, a.dim))
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.ln = nn.LayerNorm(a.dim)

    def forward(self, tokens, targets):
        x = self.embedding(tokens) + self.position[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        logits = self.ln(x) @ self.embedding.weight.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["fp", "binary", "ternary", "int4"], default="fp")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn-dim", type=int, default=1024)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--block", type=int, default=32, help="int4: Hadamard block")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    model = Model(a)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    times = []
    for step in range(a.warmup + a.steps):
        tokens = torch.randint(0, a.vocab, (a.batch, a.context))
        targets = torch.randint(0, a.vocab, (a.batch, a.context))
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "mode": a.mode, "threads": a.threads,
        "tokens_per_second": round(a.batch * a.context / median), "step_seconds": round(median, 4),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        "parameters": sum(x.numel() for x in model.parameters()), "final_loss": round(loss.item(), 4),
    }))


if __name__ == "__main__":
    main()
