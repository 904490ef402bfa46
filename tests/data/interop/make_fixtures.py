#!/usr/bin/python3
"""Writes .npy/.npz files with numpy itself, plus the exact float32 values numpy reads back.

Usage: make_fixtures.py OUT_DIR [--all]
  default: the few small files committed in tests/data/interop/
  --all:   every dtype x byte order x C/Fortran order x rank 2..5 x format version (test_import_npy
           runs this at test time when python3-numpy is installed)
For each X.npy it writes X.ref: little-endian float32 values of numpy's array in C order.
For each Y.npz it writes Y__<member>.ref for every float member.
"""
import os
import sys

import numpy as np

out = sys.argv[1]
full = "--all" in sys.argv
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)

SHAPES = {2: (3, 4), 3: (2, 3, 4), 4: (2, 2, 3, 3), 5: (2, 2, 2, 3, 4)}


def values(shape, special):
    a = rng.random(shape)
    a = a / a.sum(axis=-1, keepdims=True)  # rows sum to 1 like attention
    if special:  # values numpy keeps that a careless converter would not: NaN, +-Inf, tiny, huge
        flat = a.reshape(-1)
        flat[0] = np.nan
        flat[1] = np.inf
        flat[2] = -np.inf
        flat[3] = 6.0e-8     # float16 subnormal
        flat[4] = 1.0e-30    # float32 subnormal after the float64 cast
        flat[5] = -0.0
    return a


def save_npy(name, arr, version):
    with open(os.path.join(out, name + ".npy"), "wb") as f:
        np.lib.format.write_array(f, arr, version=version)
    # What numpy reads back, as float32 in C order.
    back = np.load(os.path.join(out, name + ".npy"))
    np.ascontiguousarray(back.astype("<f4")).tofile(os.path.join(out, name + ".ref"))


def write_ref(path, arr):
    np.ascontiguousarray(np.asarray(arr).astype("<f4")).tofile(path)


if full:
    for dt in ("f2", "f4", "f8"):
        for bo in ("<", ">"):
            for order in ("C", "F"):
                for rank, shape in SHAPES.items():
                    for ver in ((1, 0), (2, 0), (3, 0)):
                        a = values(shape, special=(rank == 3))
                        arr = np.asarray(a, dtype=bo + dt, order=order)
                        if order == "F":
                            arr = np.asfortranarray(arr)
                        save_npy(f"{dt}_{'le' if bo == '<' else 'be'}_{order}_r{rank}_v{ver[0]}", arr, ver)
else:
    save_npy("f2_be_F_r3_v1", np.asfortranarray(values((2, 3, 4), True).astype(">f2")), (1, 0))
    save_npy("f4_le_C_r4_v2", values((2, 2, 3, 3), False).astype("<f4"), (2, 0))
    save_npy("f8_be_F_r5_v3", np.asfortranarray(values((2, 2, 2, 3, 4), True).astype(">f8")), (3, 0))
    save_npy("f4_le_C_r2_v1", values((3, 4), False).astype("<f4"), (1, 0))

# Encoder-decoder archives shaped like the README recipe: [layers, heads, q, k] after batch 0.
S, T = ["▁the", "▁cat", "▁sat", "</s>"], ["▁die", "▁Katze", "▁saß", "</s>", "ü"]
enc = values((2, 2, len(S), len(S)), False).astype(np.float32)
dec = values((2, 2, len(T), len(T)), False).astype(np.float32)
cross = values((2, 2, len(T), len(S)), False).astype(np.float32)
for name, save in (("encdec_stored", np.savez), ("encdec_deflated", np.savez_compressed)):
    save(os.path.join(out, name + ".npz"), encoder_attentions=enc, decoder_attentions=dec,
         cross_attentions=cross, src_tokens=np.array(S), tgt_tokens=np.array(T))
    for m, a in (("encoder_attentions", enc), ("decoder_attentions", dec), ("cross_attentions", cross)):
        write_ref(os.path.join(out, f"{name}__{m}.ref"), a)
# Encoder-only, 5-D with a batch of 2 and float16, tokens with non-ASCII text.
tok = ["[CLS]", "café", "猫", "[SEP]"]
att = values((3, 2, 2, len(tok), len(tok)), True).astype(np.float16)
np.savez_compressed(os.path.join(out, "encoder_batch.npz"), attentions=att, tokens=np.array(tok))
write_ref(os.path.join(out, "encoder_batch__attentions.ref"), att)
# Hugging Face's outputs.attentions saved positionally: np.savez(f, *attentions) names the members
# arr_0..arr_11 (12 layers, so arr_10 and arr_11 come after arr_1 in name order), each [batch 2,
# heads 2, q, k], plus the tokens.
tup_tok = ["[CLS]", "the", "cat", "[SEP]"]
tup = [values((2, 2, len(tup_tok), len(tup_tok)), False).astype(np.float32) for _ in range(12)]
np.savez(os.path.join(out, "layer_tuple.npz"), *tup, tokens=np.array(tup_tok))
write_ref(os.path.join(out, "layer_tuple__stacked.ref"), np.stack(tup))
# A torch.save file is a ZIP too (archive/data.pkl + raw storages): written here with zipfile in
# torch's layout so the test needs no torch.
import zipfile
with zipfile.ZipFile(os.path.join(out, "torch_save_like.pt"), "w") as z:
    for name, data in (("archive/data.pkl", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00."),
                       ("archive/data/0", np.zeros(4, np.float32).tobytes()), ("archive/version", b"3\n")):
        z.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)  # fixed time: same bytes
# Positional members that are not one layer tuple (shapes differ): kept as arr_0 and arr_1.
np.savez(os.path.join(out, "not_a_tuple.npz"), values((2, 3, 3), False).astype(np.float32),
         values((2, 4, 4), False).astype(np.float32))

# CSV/TSV attention matrices the way pandas (python3-pandas, only needed to regenerate these) and
# np.savetxt write them. For each X.csv/.tsv/.txt: X.ref holds the float32 values pandas (or
# np.loadtxt) reads back, C order, and X.expect.json the shape and the tokens pandas reads back
# (query tokens from the index column, key tokens from the header; [] where the file has none).
if not full:
    import json
    import pandas as pd

    crng = np.random.default_rng(11)

    def softmax_rows(q, k):
        a = np.exp(crng.normal(size=(q, k)) * 2)
        return a / a.sum(axis=-1, keepdims=True)

    def expect(name, back, queries, keys):
        write_ref(os.path.join(out, name + ".ref"), back)
        with open(os.path.join(out, name + ".expect.json"), "w", encoding="utf-8") as f:
            json.dump({"shape": list(back.shape), "query_tokens": queries, "key_tokens": keys}, f,
                      ensure_ascii=False, indent=1)
            f.write("\n")

    # Self-attention with index and header: tokens with a comma, a quote and non-ASCII text; float32
    # values with what pandas writes for NaN (an empty cell), inf, -inf, -0.0 and 1e-05.
    toks = ["[CLS]", "a,b", 'say "hi"', "café", "猫", "[SEP]"]
    att = softmax_rows(6, 6).astype(np.float32)
    att[1, 2], att[2, 3], att[3, 4], att[4, 0], att[5, 5] = np.nan, np.inf, -np.inf, -0.0, 1e-05
    p = os.path.join(out, "pandas_self.csv")
    pd.DataFrame(att, index=toks, columns=toks).to_csv(p)
    back = pd.read_csv(p, index_col=0)
    expect("pandas_self", back.to_numpy(), list(back.index), list(back.columns))

    # Cross-attention [T=3, S=5] as TSV (sep="\t"), float64, target tokens as the index.
    src, tgt = ["▁The", "▁cat", ",", "\"quoted\"", "</s>"], ["▁Die", "▁Katze", "</s>"]
    p = os.path.join(out, "pandas_cross.tsv")
    pd.DataFrame(softmax_rows(3, 5), index=tgt, columns=src).to_csv(p, sep="\t")
    back = pd.read_csv(p, sep="\t", index_col=0)
    expect("pandas_cross", back.to_numpy(), list(back.index), list(back.columns))

    # Windows style: CRLF line ends and a UTF-8 byte-order mark (encoding="utf-8-sig"), no index.
    p = os.path.join(out, "pandas_crlf_bom.csv")
    pd.DataFrame(softmax_rows(4, 4), columns=["ü", "ß", "x y", "end"]).to_csv(
        p, index=False, lineterminator="\r\n", encoding="utf-8-sig")
    back = pd.read_csv(p, encoding="utf-8-sig")
    expect("pandas_crlf_bom", back.to_numpy(), [], list(back.columns))

    # pandas' defaults without tokens: header ",0,1,2" and an index column 0..n-1 (positions).
    p = os.path.join(out, "pandas_default.csv")
    pd.DataFrame(softmax_rows(3, 3)).to_csv(p)
    back = pd.read_csv(p, index_col=0)
    expect("pandas_default", back.to_numpy(), [], [])

    # Neither index nor header: numbers only.
    p = os.path.join(out, "pandas_bare.csv")
    pd.DataFrame(softmax_rows(2, 4)).to_csv(p, index=False, header=False)
    back = pd.read_csv(p, header=None)
    expect("pandas_bare", back.to_numpy(), [], [])

    # np.savetxt with delimiter="," and header= (written after its "# " comments prefix).
    p = os.path.join(out, "savetxt_comma.csv")
    np.savetxt(p, softmax_rows(3, 4), delimiter=",", header="layer 0, head 1")
    back = np.loadtxt(p, delimiter=",")
    expect("savetxt_comma", back, [], [])

    # np.savetxt's defaults: space-separated %.18e.
    p = os.path.join(out, "savetxt_default.txt")
    np.savetxt(p, softmax_rows(4, 4))
    back = np.loadtxt(p)
    expect("savetxt_default", back, [], [])

    # to_csv(index=False) without column names: a header of pandas' labels 0..n-1 above the floats.
    p = os.path.join(out, "pandas_range_header.csv")
    pd.DataFrame(softmax_rows(3, 3)).to_csv(p, index=False)
    back = pd.read_csv(p)
    expect("pandas_range_header", back.to_numpy(), [], [])
