"""Helpers shared by the PyTorch peer scripts of bench/peers."""
import argparse
import os
import shutil
import time


def blas_library(torch):
    """The BLAS shared library PyTorch's matmul runs on (Debian's torch links the libblas.so.3
    alternative: netlib's reference BLAS unless libopenblas0-pthread is installed)."""
    torch.matmul(torch.ones(64, 64), torch.ones(64, 64))
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "blas" in line.rsplit("/", 1)[-1]})
    except OSError:
        return "unknown"
    return ", ".join(os.path.realpath(lib) for lib in libs) or "unknown"


def best_time(fn, min_seconds, max_runs=10):
    """Best wall time of fn() after one warm-up call: runs until min_seconds have passed (at least
    two runs, at most max_runs)."""
    fn()
    best, total, runs = float("inf"), 0.0, 0
    while (total < min_seconds or runs < 2) and runs < max_runs:
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best, total, runs = min(best, t), total + t, runs + 1
    return best


def find_attnviz(path):
    """The attnviz binary: the given path, else build*/attnviz of this checkout, else PATH."""
    if path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cands = [os.path.join(root, d, "attnviz") for d in sorted(os.listdir(root)) if d.startswith("build")]
    cands = [c for c in cands if os.access(c, os.X_OK)] + [shutil.which("attnviz") or ""]
    return next((c for c in cands if c), None)


def model_bench_args(doc):
    """The command line shared by the pretrained-model benches (torch_llama.py, torch_bert.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attnviz", default=None, help="path to the attnviz binary (default: build*/attnviz or PATH)")
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--threads", type=int, default=2, help="attnviz threads (PyTorch runs 1 and 2)")
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    return args
