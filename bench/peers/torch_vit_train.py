#!/usr/bin/python3
"""Side-by-side training throughput: attnviz's MNIST ViT vs the same model in PyTorch (CPU).

Reference architecture (issue 5): patch 4x4 on 28x28, D=64, CLS + learned positions, 2 pre-LN
encoder blocks, 4 heads, MLP 128 with GELU, final LayerNorm, linear head; batch 64; Adam lr 1e-3
(constant, no clipping, no augmentation). Both run the same number of steps on random images
with the same thread count, one after the other in this one run, and the ratio is printed.

Run with Debian's python3-torch:  /usr/bin/python3 bench/peers/torch_vit_train.py --threads 2
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn


class ViT(nn.Module):
    def __init__(self, patch=4, dim=64, depth=2, heads=4, mlp=128, classes=10):
        super().__init__()
        self.patch = patch
        n = (28 // patch) ** 2
        self.proj = nn.Linear(patch * patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):  # x: [B, 1, 28, 28]
        b = x.shape[0]
        p = self.patch
        x = x.unfold(2, p, p).unfold(3, p, p).reshape(b, -1, p * p)  # [B, P, p*p], row-major patches
        x = torch.cat([self.cls.expand(b, -1, -1), self.proj(x)], dim=1) + self.pos
        x = self.encoder(x)
        return self.head(self.norm(x[:, 0]))


def torch_rate(steps, warmup, batch, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ViT()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = steps + warmup
    xs = torch.rand(n, batch, 1, 28, 28)
    ys = torch.randint(0, 10, (n, batch))
    t0 = None
    for i in range(n):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[i]), ys[i])
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    return steps * batch / secs, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--attnviz", default=os.path.join(here, "..", "..", "build", "attnviz"),
                    help="path of the attnviz executable")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    cmd = [a.attnviz, "--threads", str(a.threads), "bench", "train", "--steps", str(a.steps),
           "--warmup-steps", str(a.warmup), "--batch", str(a.batch), "--depth", "2", "--dim", "64",
           "--heads", "4", "--mlp", "128", "--patch", "4", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ours = json.loads(out.strip().splitlines()[-1])
    theirs, tsecs = torch_rate(a.steps, a.warmup, a.batch, a.threads)
    ratio = ours["samples_per_second"] / theirs
    if a.json:
        print(json.dumps({"attnviz_samples_per_second": ours["samples_per_second"],
                          "torch_samples_per_second": theirs, "ratio": ratio, "threads": a.threads,
                          "steps": a.steps, "batch": a.batch, "torch_version": torch.__version__}))
    else:
        print(f"reference ViT (patch 4, D=64, 2 pre-LN blocks, 4 heads, MLP 128 GELU), batch {a.batch}, "
              f"Adam lr 1e-3, {a.steps} timed steps, {a.threads} threads")
        print(f"  attnviz        : {ours['samples_per_second']:8.0f} samples/s ({ours['seconds']:.2f} s)")
        print(f"  PyTorch {torch.__version__:7}: {theirs:8.0f} samples/s ({tsecs:.2f} s)")
        print(f"  ratio attnviz / PyTorch: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
