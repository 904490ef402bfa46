#!/usr/bin/python3
"""Adds hand-made seeds to tests/fuzz/corpus/ (the rest are copies of samples/ and tests/data/interop/)."""
import json
import os
import struct

import numpy as np

C = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for name, arr, dt in tensors:
        b = arr.tobytes() if dt != "BF16" else (arr.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


a = np.full((2, 2, 3, 3), 1 / 3)
safetensors(os.path.join(C, "safetensors", "foreign_f16_bf16.safetensors"),
            [("encoder_attentions", a.astype("<f2"), "F16"), ("cross_attentions", a[:, :, :2].astype("<f4"), "BF16")],
            {"src_tokens": json.dumps(["a", "b", "c"]), "tgt_tokens": json.dumps(["x", "y"])})
safetensors(os.path.join(C, "safetensors", "foreign_f64_5d.safetensors"),
            [("attentions", np.full((1, 2, 1, 2, 2), 0.5).astype("<f8"), "F64")])
with open(os.path.join(C, "npy", "tokens_U5.npy"), "wb") as f:
    np.save(f, np.array(["ab", "猫", "é"]))
with open(os.path.join(C, "npy", "f2_be_scalarish.npy"), "wb") as f:
    np.save(f, np.array([[1.0, float("nan")], [float("inf"), 0.0]], dtype=">f2"))
with open(os.path.join(C, "json", "nan_python.json"), "w") as f:
    json.dump({"tokens": ["a", "b"], "attention": [[[[0.5, float("nan")], [float("inf"), -float("inf")]]]]}, f)
with open(os.path.join(C, "json", "null_2d.json"), "w") as f:
    f.write('{"tokens": ["a"], "attention": [[null]], "model": "x"}')
# CSV: a quoted token holding a line break and "" quotes, a header naming only the value columns,
# and pandas' sep="\t" output without a final newline.
with open(os.path.join(C, "csv", "quoted_newline.csv"), "w", newline="") as f:
    f.write(',"a\nb","say ""hi"""\n"a\nb",0.5,NaN\n"say ""hi""",+1e-05,-inf\n')
with open(os.path.join(C, "csv", "short_header_noeol.tsv"), "w", newline="") as f:
    f.write("x\ty\nx\t0.5\t0.5\ny\t\t1")
