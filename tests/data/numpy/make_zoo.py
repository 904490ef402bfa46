#!/usr/bin/env python3
"""Writes the .npy/.npz files numpy itself makes, for test_safety_numpy: every float dtype
(float16/32/64, longdouble) in both byte orders, 1-D to 5-D, C and Fortran order, np.savez and
np.savez_compressed; plus one file per unsupported dtype. Values are arange(n) * 0.25 in C order,
exact in every float dtype, so the C++ side checks them without a second file.

usage: make_zoo.py OUT_DIR     (prints numpy's version)"""
import os
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
shapes = {1: (7,), 2: (3, 5), 3: (2, 3, 4), 4: (2, 2, 3, 5), 5: (2, 1, 2, 3, 4)}
floats = {"f2": np.float16, "f4": np.float32, "f8": np.float64, "g": np.longdouble}
for tag, t in floats.items():
    for order in "<>":
        dt = np.dtype(t).newbyteorder(order)
        for rank, shape in shapes.items():
            a = (np.arange(int(np.prod(shape))) * 0.25).reshape(shape).astype(dt)
            base = f"{tag}_{'le' if order == '<' else 'be'}_{rank}d"
            np.save(os.path.join(out, base + "_c.npy"), a)
            np.save(os.path.join(out, base + "_f.npy"), np.asfortranarray(a))
            # A non-contiguous view: numpy writes it in C order.
            np.save(os.path.join(out, base + "_view.npy"), np.repeat(a, 2, axis=-1)[..., ::2])
    a = (np.arange(24) * 0.25).reshape(2, 3, 4).astype(t)
    np.savez(os.path.join(out, f"{tag}_savez.npz"), attention=a, tokens=np.array(["a", "b", "c", "d"]))
    np.savez_compressed(os.path.join(out, f"{tag}_savez_compressed.npz"), attention=a, other=a[:1])

unsupported = {
    "int64": np.arange(6).reshape(2, 3),
    "uint8": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "bool": np.ones((2, 3), dtype=bool),
    "complex": np.ones((2, 3), dtype=np.complex64),
    "bytes": np.array([b"ab", b"cd"]),
    "object": np.array([np.zeros(2), np.zeros(3)], dtype=object),
    "datetime": np.array(["2024-01-01"], dtype="datetime64[D]"),
}
for name, a in unsupported.items():
    np.save(os.path.join(out, f"bad_{name}.npy"), a, allow_pickle=True)
np.savez(os.path.join(out, "mixed_object.npz"), attention=(np.arange(6) * 0.25).reshape(2, 3).astype(np.float32),
         lengths=unsupported["object"])
print(np.__version__)
