#!/usr/bin/python3
"""Writes the interop samples: .npz/.json files shaped exactly like the README recipe's output.

Run: /usr/bin/python3 samples/make_interop_samples.py   (needs numpy; the outputs are committed)
The attention values are hand-made patterns (previous token, next token, [CLS]/[SEP] sinks, a
monotone alignment with one reordering), softmax-normalised like a real model's.
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def band(q, k, offset, sharp=4.0):
    """Scores peaking at key = query + offset."""
    i = np.arange(q)[:, None]
    j = np.arange(k)[None, :]
    return -sharp * np.abs(j - (i * (k - 1) / max(q - 1, 1) + offset))


# Encoder-only (bert-base-uncased style): [layers, heads, q, k] after picking batch 0.
tokens = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
n = len(tokens)
sink = np.zeros((n, n)); sink[:, 0] += 3.0; sink[:, -1] += 2.0
enc = np.stack([
    np.stack([softmax(band(n, n, -1)), softmax(band(n, n, 1)), softmax(sink + 0.3 * band(n, n, 0))]),
    np.stack([softmax(band(n, n, 0, 1.0)), softmax(sink), softmax(band(n, n, 0, 8.0))]),
]).astype(np.float32)  # [2 layers, 3 heads, 8, 8]
np.savez(os.path.join(HERE, "encoder_attention.npz"), attentions=enc, tokens=np.array(tokens))

# Encoder-decoder (Helsinki-NLP/opus-mt-en-de style), saved compressed.
src = ["▁The", "▁cat", "▁did", "▁not", "▁eat", "</s>"]
tgt = ["<pad>", "▁Die", "▁Katze", "▁aß", "▁nicht", "</s>"]
S, T = len(src), len(tgt)
align = np.array([0, 0, 1, 4, 3, 5])  # target position -> source position
cross_scores = -4.0 * np.abs(np.arange(S)[None, :] - align[:, None])
causal = np.triu(np.full((T, T), -1e9), 1)
enc2 = np.stack([np.stack([softmax(band(S, S, 0, 2.0)), softmax(band(S, S, -1))])] * 2).astype(np.float32)
dec2 = np.stack([np.stack([softmax(causal + band(T, T, -1)), softmax(causal)])] * 2).astype(np.float32)
cross2 = np.stack([np.stack([softmax(0.5 * cross_scores), softmax(cross_scores)]),
                   np.stack([softmax(cross_scores), softmax(2.0 * cross_scores)])]).astype(np.float32)
np.savez_compressed(os.path.join(HERE, "translation_attention.npz"), encoder_attentions=enc2,
                    decoder_attentions=dec2, cross_attentions=cross2,
                    src_tokens=np.array(src), tgt_tokens=np.array(tgt))

# The same data as JSON: the encoder-only form and the encoder-decoder form.
r = lambda a: np.round(a.astype(np.float64), 5).tolist()
with open(os.path.join(HERE, "encoder_attention.json"), "w", encoding="utf-8") as f:
    json.dump({"tokens": tokens, "attention": r(enc)}, f, ensure_ascii=False)
with open(os.path.join(HERE, "translation_attention.json"), "w", encoding="utf-8") as f:
    json.dump({"source_tokens": src, "target_tokens": tgt, "encoder_attention": r(enc2),
               "decoder_attention": r(dec2), "cross_attention": r(cross2)}, f, ensure_ascii=False)
