#!/usr/bin/env python3
"""PyTorch eager fp32 doing the DPO step that `deno task bench` times, for a side-by-side figure.

The step is the bench's (src/train/bench.ts): a Llama-family model with tied embeddings and random
weights; 2 x pairs sequences (chosen rows, then rejected rows) of seq_len random tokens, the first
quarter of each row prompt and the rest completion; the policy's forward and backward on all of
them; per-sequence completion log-probs summed over the completion tokens; the sigmoid DPO loss
(beta 0.1) against reference log-probs that are precomputed (constants, no reference model);
gradient-norm clipping at 1 (HF's max_grad_norm); AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0, as HF TrainingArguments). fp32 throughout, TF32 off for matmuls and cuDNN.

Defaults are the SmolLM2-135M shape at 4 pairs x 256 tokens (the bench's first `large` row).
Prints one JSON object on stdout; `deno task bench --pytorch-json FILE` merges its tokens_per_s
into the bench row of the same name, pairs, seq_len and params as `pytorch_tokens_per_s`.

  python3 docs/bench/pytorch_dpo_step.py                       # CUDA, the 135M shape
  python3 docs/bench/pytorch_dpo_step.py --device cpu --layers 2 --steps 2
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.heads, self.kv_heads = a.heads, a.kv_heads
        self.hd = a.hidden // a.heads
        self.attn = a.attn
        self.input_layernorm = RMSNorm(a.hidden, a.eps)
        self.q_proj = nn.Linear(a.hidden, a.heads * self.hd, bias=False)
        self.k_proj = nn.Linear(a.hidden, a.kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(a.hidden, a.kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(a.heads * self.hd, a.hidden, bias=False)
        self.post_attention_layernorm = RMSNorm(a.hidden, a.eps)
        self.gate_proj = nn.Linear(a.hidden, a.ffn, bias=False)
        self.up_proj = nn.Linear(a.hidden, a.ffn, bias=False)
        self.down_proj = nn.Linear(a.ffn, a.hidden, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads  # grouped-query heads, as HF's repeat_kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        if self.attn == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            o = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        x = x + self.o_proj(o.transpose(1, 2).reshape(B, T, -1))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        self.layers = nn.ModuleList(Layer(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden, a.eps)
        hd = a.hidden // a.heads
        inv_freq = a.rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        ang = torch.arange(a.seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed_tokens(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x) @ self.embed_tokens.weight.t()  # tied LM head


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--name", default="SmolLM2-135M shape", help="the bench row this matches")
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--heads", type=int, default=9)
    p.add_argument("--kv-heads", type=int, default=3)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--eps", type=float, default=1e-5)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "math"],
                   help="sdpa: F.scaled_dot_product_attention (HF's default); math: softmax(QK^T)V")
    a = p.parse_args()
    bad = [n for n in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "pairs", "seq_len",
                       "steps") if getattr(a, n) < 1]
    if bad or a.warmup < 0 or a.hidden % a.heads or a.heads % a.kv_heads or a.seq_len < 4:
        p.error("sizes must be positive, hidden a multiple of heads, heads of kv-heads, seq-len >= 4")
    if a.attn == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        a.attn = "math"  # torch < 2.0
    return a


def main():
    a = parse()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("pytorch_dpo_step: no CUDA device (use --device cpu)", file=sys.stderr)
        sys.exit(2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = Llama(a)
    for m in model.modules():  # HF's initializer_range 0.02
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
    model = model.to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    B, T = 2 * a.pairs, a.seq_len
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, a.vocab, (B, T), generator=g)
    # Targets as the bench's: the next token for completion positions t >= T/4, else ignored.
    targets = torch.full((B, T), -1, dtype=torch.long)
    targets[:, T // 4:T - 1] = ids[:, T // 4 + 1:]
    ids, targets = ids.to(dev), targets.to(dev)
    mask = targets >= 0
    ref = torch.full((B,), -100.0, device=dev)  # precomputed reference log-probs

    def step():
        logits = model(ids)
        logp = torch.log_softmax(logits, dim=-1)
        tok = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        seq = (tok * mask).sum(-1)
        margin = (seq[:a.pairs] - ref[:a.pairs]) - (seq[a.pairs:] - ref[a.pairs:])
        loss = -F.logsigmoid(a.beta * margin).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    seconds = (time.perf_counter() - start) / a.steps
    loss = float(loss)
    if not math.isfinite(loss):
        print(f"pytorch_dpo_step: loss is {loss}", file=sys.stderr)
        sys.exit(1)
    out = {
        "name": a.name,
        "framework": f"pytorch {torch.__version__} eager fp32",
        "device": torch.cuda.get_device_name(dev) if a.device == "cuda" else "cpu",
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32),
        "attention": a.attn,
        "params": params,
        "pairs": a.pairs,
        "seq_len": T,
        "tokens_per_step": B * T,
        "steps": a.steps,
        "seconds_per_step": seconds,
        "tokens_per_s": B * T / seconds,
        "loss": loss,
        "peak_bytes": torch.cuda.max_memory_allocated(dev) if a.device == "cuda" else None,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
