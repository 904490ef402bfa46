#!/usr/bin/python3
"""Attention forward throughput: PyTorch's two CPU paths next to attnviz's blocked kernel, in one run.

PyTorch paths (same shapes, same thread count):
  plain  softmax(q k^T / sqrt(d)) v with torch.matmul + torch.softmax
  fused  torch.nn.functional._scaled_dot_product_attention (PyTorch 1.13's name for SDPA)
attnviz: `attnviz bench kernels --json` for the same N, d, H and threads.

Usage: /usr/bin/python3 bench/peers/torch_attention.py [--attnviz build/attnviz] [--threads 2]
       [--sizes 1024,4096] [--dim 64] [--heads 8] [--json]
GFLOP counts 4*N*N*d*H per forward (batch 1), as `attnviz bench kernels` does.
"""
import argparse
import json
import math
import subprocess
import sys

from peer_common import best_time, blas_library, find_attnviz


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attnviz", default=None, help="path to the attnviz binary (default: build*/attnviz or PATH)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import torch
    torch.set_num_threads(args.threads)
    blas = blas_library(torch)
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None) or \
        getattr(torch.nn.functional, "_scaled_dot_product_attention", None)

    rows = []
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        q = torch.randn(1, args.heads, n, args.dim, generator=g)
        k = torch.randn(1, args.heads, n, args.dim, generator=g)
        v = torch.randn(1, args.heads, n, args.dim, generator=g)
        scale = 1.0 / math.sqrt(args.dim)
        gflop = 4.0 * n * n * args.dim * args.heads / 1e9

        def plain():
            with torch.no_grad():
                return torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1), v)

        def fused():
            with torch.no_grad():
                out = sdpa(q, k, v)
                return out[0] if isinstance(out, tuple) else out

        ref = plain()
        row = {"n": n, "gflop": gflop}
        row["torch_plain_s"] = best_time(plain, args.min_seconds, 30)
        if sdpa is not None:
            assert torch.allclose(fused(), ref, atol=1e-4), "SDPA and plain disagree"
            row["torch_fused_s"] = best_time(fused, args.min_seconds, 30)
        rows.append(row)

    exe = find_attnviz(args.attnviz)
    peak = None
    if exe:
        out = subprocess.run([exe, "--threads", str(args.threads), "bench", "kernels", "--json", "--no-models",
                              "--naive-max", "0", "--sizes", ",".join(map(str, sizes)),
                              "--dim", str(args.dim), "--heads", str(args.heads)],
                             check=True, capture_output=True, text=True).stdout
        res = json.loads(out)
        peak = res["peak_gflops_all_threads"]
        by_n = {r["n"]: r for r in res["kernels"]}
        for row in rows:
            row["attnviz_s"] = by_n[row["n"]]["blocked_all_threads_s"]

    for row in rows:
        paths = [row["torch_plain_s"]] + ([row["torch_fused_s"]] if "torch_fused_s" in row else [])
        row["torch_best_s"] = min(paths)
        if "attnviz_s" in row:
            row["attnviz_speedup_vs_best_torch"] = row["torch_best_s"] / row["attnviz_s"]

    if args.json:
        print(json.dumps({"threads": args.threads, "torch": torch.__version__, "blas": blas, "fma_peak_gflops": peak,
                          "attnviz": exe, "rows": rows}, indent=2))
        return
    print(f"attention forward, d={args.dim}, H={args.heads}, batch 1, {args.threads} threads, "
          f"torch {torch.__version__}, attnviz {exe or '(not found)'}")
    print(f"PyTorch BLAS: {blas}")
    if "openblas" not in blas and "mkl" not in blas:
        print("warning: PyTorch runs on the reference (netlib) BLAS, ~10x slower than OpenBLAS; for a fair peer "
              "install it: apt-get install libopenblas0-pthread", file=sys.stderr)
    if peak:
        print(f"measured FP32 FMA peak ({args.threads} threads): {peak:.1f} GFLOP/s")
    print(f"{'N':>6} {'torch plain':>18} {'torch SDPA':>18} {'attnviz':>18} {'vs best torch':>14}")
    for r in rows:
        def cell(key):
            if key not in r:
                return "-"
            return f"{r[key]*1e3:8.1f}ms {r['gflop']/r[key]:6.1f}GF"
        sp = f"{r['attnviz_speedup_vs_best_torch']:.2f}x" if "attnviz_speedup_vs_best_torch" in r else "-"
        print(f"{r['n']:>6} {cell('torch_plain_s'):>18} {cell('torch_fused_s'):>18} {cell('attnviz_s'):>18} {sp:>14}")


if __name__ == "__main__":
    sys.exit(main())
