#!/usr/bin/python3
"""BERT-base forward with every attention weight kept: PyTorch eager next to `attnviz bench encoder`, in one run.

The model is the bert-base shape (12 layers, d 768, 12 heads, FFN 3072, vocab 30522, 512 positions,
2 token types) with random weights, written out in plain torch ops as Hugging Face's eager BertModel
runs with output_attentions=True: embeddings + LayerNorm, per layer q/k/v, softmax(q k^T / sqrt(d))
materialized and kept for every layer, output dense + residual + LayerNorm, erf GELU FFN + residual +
LayerNorm (post-LN). PyTorch runs on 1 and 2 threads; attnviz on --threads (default 2).

Usage: /usr/bin/python3 bench/peers/torch_bert.py [--attnviz build/attnviz] [--sizes 128,512]
       [--threads 2] [--min-seconds 2] [--json]
Needs Debian's python3-torch (and libopenblas0-pthread, or PyTorch runs on the slow reference BLAS).
"""
import json
import math
import subprocess
import sys

from peer_common import best_time, blas_library, find_attnviz, model_bench_args

LAYERS, DIM, HEADS, FFN, VOCAB, POS = 12, 768, 12, 3072, 30522, 512


def make_model(torch):
    g = torch.Generator().manual_seed(1)
    def w(*shape):
        return torch.randn(*shape, generator=g) * 0.02
    z = lambda n: torch.zeros(n)
    layers = [dict(wq=w(DIM, DIM), bq=z(DIM), wk=w(DIM, DIM), bk=z(DIM), wv=w(DIM, DIM), bv=z(DIM), wo=w(DIM, DIM), bo=z(DIM),
                   ln1w=torch.ones(DIM), ln1b=z(DIM), wi=w(FFN, DIM), bi=z(FFN), wf=w(DIM, FFN), bf=z(DIM),
                   ln2w=torch.ones(DIM), ln2b=z(DIM)) for _ in range(LAYERS)]
    return dict(word=w(VOCAB, DIM), pos=w(POS, DIM), type=w(2, DIM), lnw=torch.ones(DIM), lnb=z(DIM), layers=layers)


def forward(torch, m, ids, types):
    """ids [T] -> (last hidden [T, D], attention weights of every layer [H, T, T])."""
    F = torch.nn.functional
    T, Dh = ids.shape[0], DIM // HEADS
    x = F.layer_norm(m["word"][ids] + m["pos"][:T] + m["type"][types], (DIM,), m["lnw"], m["lnb"], 1e-12)
    weights = []
    for L in m["layers"]:
        q = F.linear(x, L["wq"], L["bq"]).view(T, HEADS, Dh).transpose(0, 1)
        k = F.linear(x, L["wk"], L["bk"]).view(T, HEADS, Dh).transpose(0, 1)
        v = F.linear(x, L["wv"], L["bv"]).view(T, HEADS, Dh).transpose(0, 1)
        a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(Dh), dim=-1)
        weights.append(a)
        o = torch.matmul(a, v).transpose(0, 1).reshape(T, DIM)
        x = F.layer_norm(F.linear(o, L["wo"], L["bo"]) + x, (DIM,), L["ln1w"], L["ln1b"], 1e-12)
        h = F.linear(F.gelu(F.linear(x, L["wi"], L["bi"])), L["wf"], L["bf"])
        x = F.layer_norm(h + x, (DIM,), L["ln2w"], L["ln2b"], 1e-12)
    return x, weights


def main():
    args = model_bench_args(__doc__)
    sizes = args.sizes

    import torch
    blas = blas_library(torch)
    model = make_model(torch)
    rows = {T: {"T": T} for T in sizes}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for T in sizes:
            g = torch.Generator().manual_seed(T)
            ids = torch.randint(0, VOCAB, (T,), generator=g)
            types = torch.zeros(T, dtype=torch.long)
            with torch.no_grad():
                rows[T][f"torch_{threads}t_s"] = best_time(lambda: forward(torch, model, ids, types), args.min_seconds)

    exe = find_attnviz(args.attnviz)
    if exe:
        out = subprocess.run([exe, "--threads", str(args.threads), "bench", "encoder", "--json", "--sizes",
                              ",".join(map(str, sizes)), "--min-seconds", str(args.min_seconds)],
                             check=True, capture_output=True, text=True).stdout
        res = json.loads(out)
        for r in res["rows"]:
            key = "attnviz_record_s" if "record" in r["what"] else "attnviz_s"
            rows[r["T"]][key] = r["seconds"]
    for r in rows.values():
        r["torch_best_s"] = min(r["torch_1t_s"], r["torch_2t_s"])
        if "attnviz_record_s" in r:
            r["speedup_vs_best_torch"] = r["torch_best_s"] / r["attnviz_record_s"]
    if args.json:
        print(json.dumps({"blas": blas, "attnviz_threads": args.threads, "rows": list(rows.values())}, indent=2))
        return
    print(f"BERT-base shape, every head kept; PyTorch {torch.__version__} eager ({blas}); attnviz {args.threads} threads")
    print(f"{'T':>5} {'torch 1t':>10} {'torch 2t':>10} {'attnviz':>10} {'+record':>10} {'speedup':>8}")
    for r in rows.values():
        f = lambda k: f"{r[k] * 1e3:9.0f}ms" if k in r else f"{'-':>11}"
        print(f"{r['T']:>5} {f('torch_1t_s')} {f('torch_2t_s')} {f('attnviz_s')} {f('attnviz_record_s')} "
              f"{r.get('speedup_vs_best_torch', float('nan')):7.2f}x")


if __name__ == "__main__":
    sys.exit(main())
