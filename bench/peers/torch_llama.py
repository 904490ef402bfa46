#!/usr/bin/python3
"""Llama prefill with every attention weight kept: PyTorch eager next to `attnviz bench lm`, in one run.

The model is the SmolLM2-135M shape (30 layers, d 576, 9 heads, 3 KV heads of 64, SwiGLU FFN 1536,
vocab 49152, tied output) with random weights, written out in plain torch ops as Hugging Face's
eager LlamaForCausalLM runs it with output_attentions=True: RMSNorm, RoPE, K/V heads repeated for
GQA (repeat_interleave, as HF's repeat_kv), softmax(q k^T / sqrt(d) + causal mask) materialized
and kept for every layer, SwiGLU, logits of the last position (what generation needs; attnviz
computes the same). PyTorch runs on 1 and 2 threads; attnviz on --threads (default 2).

Usage: /usr/bin/python3 bench/peers/torch_llama.py [--attnviz build/attnviz] [--sizes 128,512]
       [--threads 2] [--min-seconds 2] [--json]
Needs Debian's python3-torch (and libopenblas0-pthread, or PyTorch runs on the slow reference BLAS).
"""
import json
import math
import subprocess
import sys

from peer_common import best_time, blas_library, find_attnviz, model_bench_args

LAYERS, DIM, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB, ROPE_BASE = 30, 576, 9, 3, 64, 1536, 49152, 100000.0


def matmul_flops(T):
    """2 x multiply-adds of the projections, causal attention and last-position logits (as attnviz counts)."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    proj = DIM * q + 2 * DIM * kv + q * DIM + 3 * DIM * FFN
    attn = 2.0 * HEADS * HEAD_DIM * T * (T + 1) / 2
    return 2.0 * (LAYERS * (T * proj + attn) + DIM * VOCAB)


def make_model(torch):
    g = torch.Generator().manual_seed(1)
    def w(*shape):
        return torch.randn(*shape, generator=g) * 0.02
    layers = []
    for _ in range(LAYERS):
        layers.append(dict(attn_norm=torch.ones(DIM), wq=w(HEADS * HEAD_DIM, DIM), wk=w(KV_HEADS * HEAD_DIM, DIM),
                           wv=w(KV_HEADS * HEAD_DIM, DIM), wo=w(DIM, HEADS * HEAD_DIM), ffn_norm=torch.ones(DIM),
                           gate=w(FFN, DIM), up=w(FFN, DIM), down=w(DIM, FFN)))
    return dict(emb=w(VOCAB, DIM), layers=layers, out_norm=torch.ones(DIM))


def forward(torch, m, ids):
    """ids [T] -> (last logits [V], attention weights of every layer [H, T, T])."""
    F = torch.nn.functional
    T = ids.shape[0]
    def rms(x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * wt
    inv = 1.0 / (ROPE_BASE ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)   # [T, Dh]
    def rope(x):   # x [H, T, Dh], HF rotate_half
        x1, x2 = x[..., :HEAD_DIM // 2], x[..., HEAD_DIM // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin
    mask = torch.full((T, T), float("-inf")).triu(1)
    x = m["emb"][ids]
    weights = []
    for L in m["layers"]:
        h = rms(x, L["attn_norm"])
        q = F.linear(h, L["wq"]).view(T, HEADS, HEAD_DIM).transpose(0, 1)
        k = F.linear(h, L["wk"]).view(T, KV_HEADS, HEAD_DIM).transpose(0, 1)
        v = F.linear(h, L["wv"]).view(T, KV_HEADS, HEAD_DIM).transpose(0, 1)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=0)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=0)
        a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HEAD_DIM) + mask, dim=-1)
        weights.append(a)
        o = torch.matmul(a, v).transpose(0, 1).reshape(T, HEADS * HEAD_DIM)
        x = x + F.linear(o, L["wo"])
        h = rms(x, L["ffn_norm"])
        x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
    return F.linear(rms(x[-1:], m["out_norm"]), m["emb"])[0], weights


def main():
    args = model_bench_args(__doc__)
    sizes = args.sizes

    import torch
    blas = blas_library(torch)
    model = make_model(torch)
    rows = {T: {"T": T, "gflop": matmul_flops(T) / 1e9} for T in sizes}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for T in sizes:
            ids = torch.randint(0, VOCAB, (T,), generator=torch.Generator().manual_seed(T))
            with torch.no_grad():
                rows[T][f"torch_{threads}t_s"] = best_time(lambda: forward(torch, model, ids), args.min_seconds)

    exe = find_attnviz(args.attnviz)
    peak = None
    if exe:
        out = subprocess.run([exe, "--threads", str(args.threads), "bench", "lm", "--json", "--sizes",
                              ",".join(map(str, sizes)), "--steps", "16", "--prompt", "16", "--stories", "/nonexistent"],
                             check=True, capture_output=True, text=True).stdout
        res = json.loads(out)
        peak = max(res["peak_gflops"], res["peak512_gflops"] or 0)
        by = {r["what"]: r for r in res["rows"]}
        for T in sizes:
            r = by.get(f"prefill T={T} + record")
            if r and "seconds" in r:
                rows[T]["attnviz_record_s"] = r["seconds"]
            rows[T]["attnviz_s"] = by[f"prefill T={T}"]["seconds"]
    for r in rows.values():
        r["torch_best_s"] = min(r["torch_1t_s"], r["torch_2t_s"])
        if "attnviz_record_s" in r:
            r["attnviz_record_speedup_vs_best_torch"] = r["torch_best_s"] / r["attnviz_record_s"]

    if args.json:
        print(json.dumps({"torch": torch.__version__, "blas": blas, "attnviz": exe, "attnviz_threads": args.threads,
                          "fma_peak_gflops": peak, "rows": list(rows.values())}, indent=2))
        return
    print(f"llama prefill, SmolLM2-135M shape, every attention weight kept; torch {torch.__version__} eager "
          f"(1 and 2 threads), attnviz {exe or '(not found)'} ({args.threads} threads)")
    print(f"PyTorch BLAS: {blas}")
    if "openblas" not in blas and "mkl" not in blas:
        print("warning: PyTorch runs on the reference (netlib) BLAS; install libopenblas0-pthread", file=sys.stderr)
    if peak:
        print(f"measured FP32 FMA peak ({args.threads} threads): {peak:.1f} GFLOP/s")
    print(f"{'T':>6} {'torch 1t':>18} {'torch 2t':>18} {'attnviz':>18} {'attnviz+record':>18} {'vs best torch':>14}")
    for r in rows.values():
        def cell(key):
            return f"{r[key]*1e3:8.0f}ms {r['gflop']/r[key]:6.1f}GF" if key in r else "-"
        sp = f"{r['attnviz_record_speedup_vs_best_torch']:.2f}x" if "attnviz_record_speedup_vs_best_torch" in r else "-"
        print(f"{r['T']:>6} {cell('torch_1t_s'):>18} {cell('torch_2t_s'):>18} {cell('attnviz_s'):>18} "
              f"{cell('attnviz_record_s'):>18} {sp:>14}")


if __name__ == "__main__":
    sys.exit(main())
