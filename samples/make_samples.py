#!/usr/bin/env python3
"""Writes the hand-made sample records in this folder (stdlib only; shows the record layout).

Run: python3 samples/make_samples.py   (the .safetensors files it writes are committed)
"""
import json, math, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))

def softmax(row):
    m = max(row)
    e = [math.exp(x - m) for x in row]
    s = sum(e)
    return [x / s for x in e]

def save(path, tensors, metadata):
    """tensors: list of (name, shape, flat float list). Writes F32 safetensors."""
    header, blobs, off = {}, [], 0
    for name, shape, flat in tensors:
        b = struct.pack("<%df" % len(flat), *flat)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, ensure_ascii=False).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# English -> German with the negation moved to the end and "did ... eat" fused into "aß".
src = ["the", "cat", "did", "not", "eat", "the", "fish"]
tgt = ["die", "Katze", "aß", "den", "Fisch", "nicht"]
gold_sure = [(0, 0), (1, 1), (4, 2), (5, 3), (6, 4), (3, 5)]   # (source i, target j)
gold_possible = [(2, 2)]                                          # "did" is part of "aß"

def cross_head(sharpness, extra):
    rows = []
    for j in range(len(tgt)):
        logits = [0.0] * len(src)
        for (i, jj) in gold_sure:
            if jj == j:
                logits[i] += sharpness
        for (i, jj) in gold_possible:
            if jj == j:
                logits[i] += sharpness * 0.6
        for i in range(len(src)):
            logits[i] += extra * math.cos(1.3 * i + 0.7 * j)   # deterministic "noise"
        rows.append(softmax(logits))
    return rows

def self_head(n, shift, width):
    return [softmax([-((q - k - shift) ** 2) / width for k in range(n)]) for q in range(n)]

flat = lambda m: [x for r in m for x in r]
cross = [cross_head(4.0, 0.3), cross_head(1.5, 0.8)]
enc0 = [self_head(7, 0, 0.5), self_head(7, 1, 1.0)]
enc1 = [self_head(7, -1, 1.0), self_head(7, 0, 8.0)]
tensors = [
    ("decoder.layer0.cross", [2, 6, 7], flat(cross[0]) + flat(cross[1])),
    ("encoder.layer0.self", [2, 7, 7], flat(enc0[0]) + flat(enc0[1])),
    ("encoder.layer1.self", [2, 7, 7], flat(enc1[0]) + flat(enc1[1])),
]
meta = {
    "attnviz.format": "attnviz.record/1",
    "attnviz.tensors": json.dumps([t[0] for t in tensors]),
    "attnviz.axes": json.dumps({"decoder.layer0.cross": ["target", "source"],
                                "encoder.layer0.self": ["source", "source"],
                                "encoder.layer1.self": ["source", "source"]}),
    "attnviz.tokens": json.dumps({"source": src, "target": tgt}, ensure_ascii=False),
    "model": "hand-made sample",
    "attention": "additive",
}
save(os.path.join(HERE, "alignment_6x7.safetensors"), tensors, meta)
with open(os.path.join(HERE, "alignment_6x7.gold"), "w") as f:
    pairs = ["%d-%d" % p for p in gold_sure] + ["%d?%d" % p for p in gold_possible]
    f.write(" ".join(sorted(pairs, key=lambda s: (int(s[0]), s))) + "\n")

# Chinese -> English: CJK tokens on the source axis (font fallback test).
zsrc = ["我", "喜欢", "猫", "。"]
ztgt = ["I", "like", "cats", "."]
zc = [[softmax([4.0 if i == j else 0.0 for i in range(4)]) for j in range(4)]]
save(os.path.join(HERE, "chinese_4x4.safetensors"),
     [("decoder.layer0.cross", [1, 4, 4], flat(zc[0]))],
     {"attnviz.format": "attnviz.record/1",
      "attnviz.tensors": json.dumps(["decoder.layer0.cross"]),
      "attnviz.axes": json.dumps({"decoder.layer0.cross": ["target", "source"]}),
      "attnviz.tokens": json.dumps({"source": zsrc, "target": ztgt}, ensure_ascii=False),
      "model": "hand-made sample"})
