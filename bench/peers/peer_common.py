"""Helpers shared by the PyTorch peer scripts of bench/peers."""
import os


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
