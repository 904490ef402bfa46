#!/usr/bin/python3
"""Writes the tiny GGUF test fixtures in tests/data/gguf/ and their reference outputs.

Each fixture is a llama- or gpt2-architecture model with random weights, written with `struct`
(no `gguf` package). The reference forward pass below is an independent numpy implementation in
float64 that works on the Hugging Face layout of the weights: q_proj/k_proj rows in HF's
rotate-half order, RoPE applied with rotate_half. The GGUF files hold what llama.cpp's converter
(convert_hf_to_gguf.py, LlamaModel.permute) would write: Q/K rows (and biases) permuted to the
interleaved order that llama.cpp's "normal" RoPE (adjacent pairs) expects. Quantized tensors are
quantized here and the reference uses the dequantized values (dequantized by this script from the
bytes it wrote), so the comparison measures the C++ loader and forward pass only.

Run from anywhere with Debian's python3 + python3-numpy:  /usr/bin/python3 scripts/make_gguf_fixtures.py
Deterministic (fixed seeds): a rerun rewrites byte-identical files.
"""
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "gguf")
TOKENS = [1, 5, 9, 2, 17, 30, 3, 11, 4, 25]  # the sequence every reference output is computed for

# ---- GGUF writing (ggml docs/gguf.md) --------------------------------------------------------
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i", T_F32: "<f",
          T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
GG_F32, GG_F16, GG_Q4_0, GG_Q8_0 = 0, 1, 2, 8


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t == T_STR:
        return gstr(v)
    if t == T_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gvalue(et, x) for x in items)
    return struct.pack(SCALAR[t], v)


def write_gguf(path, kvs, tensors, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml_type, ne list, bytes)]."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gvalue(t, v)
    offset = 0
    offsets = []
    for name, gt, ne, data in tensors:
        offsets.append(offset)
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", gt, offset)
        offset = (offset + len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    base = len(out)
    for (name, gt, ne, data), o in zip(tensors, offsets):
        out += b"\0" * (base + o - len(out))
        out += data
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


# ---- tensor encodings and their dequantization (ggml-common.h block layouts) -------------------
def enc_f32(x):
    return np.ascontiguousarray(x, dtype="<f4").tobytes(), np.asarray(x, dtype=np.float32)


def enc_f16(x):
    h = np.ascontiguousarray(x, dtype="<f2")
    return h.tobytes(), h.astype(np.float32)


def enc_q8_0(x):
    """Blocks of 32 along each row: f16 d = amax / 127, int8 q = round(x / d); x' = d * q."""
    rows = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    out = bytearray()
    deq = np.empty_like(rows)
    for i, b in enumerate(rows):
        d = float(np.abs(b).max()) / 127.0
        q = np.zeros(32, np.int8) if d == 0 else np.clip(np.round(b / d), -127, 127).astype(np.int8)
        d16 = np.float16(d)
        out += d16.tobytes() + q.tobytes()
        deq[i] = np.float32(d16) * q.astype(np.float32)
    return bytes(out), deq.reshape(np.shape(x))


def enc_q4_0(x):
    """Blocks of 32: d = (value of largest magnitude) / -8, q = min(15, trunc(x/d + 8.5)); byte j holds
    element j in its low nibble and element j+16 in its high nibble; x' = d * (q - 8)."""
    rows = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    out = bytearray()
    deq = np.empty_like(rows)
    for i, b in enumerate(rows):
        m = b[np.argmax(np.abs(b))]
        d = float(m) / -8.0
        inv = 1.0 / d if d else 0.0
        q = np.minimum(15, np.trunc(b * inv + 8.5)).astype(np.int32)
        q = np.clip(q, 0, 15)
        d16 = np.float16(d)
        out += d16.tobytes() + bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
        deq[i] = np.float32(d16) * (q.astype(np.float32) - 8.0)
    return bytes(out), deq.reshape(np.shape(x))


def dequant_bytes(gt, data, ne):
    """The file's bytes back to floats [ne[1], ne[0]] (independent of the encoders above)."""
    n = int(np.prod(ne))
    if gt == GG_F32:
        v = np.frombuffer(data, "<f4")
    elif gt == GG_F16:
        v = np.frombuffer(data, "<f2").astype(np.float32)
    else:
        bs = 34 if gt == GG_Q8_0 else 18
        blocks = np.frombuffer(data, np.uint8).reshape(-1, bs)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [nb, 1]
        if gt == GG_Q8_0:
            q = blocks[:, 2:].view(np.int8).astype(np.float32)
        else:
            lo, hi = blocks[:, 2:] & 0x0F, blocks[:, 2:] >> 4
            q = np.concatenate([lo, hi], axis=1).astype(np.float32) - 8.0
        v = (d * q).reshape(-1)
    return v[:n].reshape(ne[1], ne[0])


DEQ = {t: (lambda data, ne, t=t: dequant_bytes(t, data, ne)) for t in (0, 1, 2, 8)}

ENC = {GG_F32: enc_f32, GG_F16: enc_f16, GG_Q8_0: enc_q8_0, GG_Q4_0: enc_q4_0}
TYPE_NAME = {GG_F32: "F32", GG_F16: "F16", GG_Q8_0: "Q8_0", GG_Q4_0: "Q4_0"}


# ---- K-quants (ggml-common.h block_q2_K .. block_q6_K; super-blocks of 256 elements) -------------------
# Each encoder below is a simple quantizer written from the block layout (not llama.cpp's iterative
# one): per sub-block it picks a scale (and a min) that covers the sub-block's range, rounds each
# weight to the nearest level, and packs the bits. It returns the bytes, the dequantized values
# (computed in float64 from the integer fields before packing, then cast to float32) and the step
# (the distance between two levels) of every element: |dequantized - x| <= step / 2 by construction.
# The scales are stored with a ceiling so the levels always cover the sub-block: no weight is clipped.
GG_Q2_K, GG_Q3_K, GG_Q4_K, GG_Q5_K, GG_Q6_K = 10, 11, 12, 13, 14
QK_K = 256


def f16_up(v):
    """float -> f16 a little above v (so that ceil(x / f16) stays within the scale bits)."""
    return np.float16(v * (1 + 2.0 ** -9))


def affine_subblocks(x, sub, nq, sbits):
    """x: [256] -> (d16, dmin16, sc[n], m[n], q[256], step[256]) for x ~ d*sc*q - dmin*m, q in 0..nq,
    sc and m in 0..2^sbits-1, sub-blocks of `sub` elements."""
    top = 2 ** sbits - 1
    xs = x.reshape(-1, sub).astype(np.float64)
    lo = np.minimum(xs.min(1), 0.0)
    dmin16 = f16_up(-lo.min() / top) if lo.min() < 0 else np.float16(0)
    m = np.zeros(len(xs), np.int64) if dmin16 == 0 else np.clip(np.ceil(-lo / float(dmin16)), 0, top).astype(np.int64)
    lo_eff = -float(dmin16) * m
    s = (xs.max(1) - lo_eff) / nq
    d16 = f16_up(s.max() / top) if s.max() > 0 else np.float16(0)
    sc = np.zeros(len(xs), np.int64) if d16 == 0 else np.clip(np.ceil(s / float(d16)), 0, top).astype(np.int64)
    step = float(d16) * sc
    q = np.zeros_like(xs, dtype=np.int64)
    nz = step > 0
    q[nz] = np.clip(np.round((xs[nz] - lo_eff[nz, None]) / step[nz, None]), 0, nq).astype(np.int64)
    deq = float(d16) * sc[:, None] * q - float(dmin16) * m[:, None]  # float64: the products are exact
    return d16, dmin16, sc, m, q.reshape(-1), deq.astype(np.float32).reshape(-1), np.repeat(step, sub).astype(np.float32)


def symmetric_subblocks(x, sub, qmin, qmax, sbits_signed_max):
    """x: [256] -> (d16, sc[n] (signed, alternating sign), q[256] in qmin..qmax, deq, step)."""
    xs = x.reshape(-1, sub).astype(np.float64)
    s = np.abs(xs).max(1) / min(-qmin, qmax)
    d16 = f16_up(s.max() / sbits_signed_max) if s.max() > 0 else np.float16(0)
    sc = np.zeros(len(xs), np.int64) if d16 == 0 else np.clip(np.ceil(s / float(d16)), 0, sbits_signed_max).astype(np.int64)
    sc = sc * np.where(np.arange(len(xs)) % 2 == 1, -1, 1)  # odd sub-blocks: negative scales (signedness)
    step = float(d16) * sc
    q = np.zeros_like(xs, dtype=np.int64)
    nz = step != 0
    q[nz] = np.clip(np.round(xs[nz] / step[nz, None]), qmin, qmax).astype(np.int64)
    deq = float(d16) * sc[:, None] * q
    return d16, sc, q.reshape(-1), deq.astype(np.float32).reshape(-1), np.repeat(np.abs(step), sub).astype(np.float32)


def pack_scale_min_k4(sc, m):
    """8 six-bit scales and mins -> 12 bytes: bytes 0-3 scales 0-3 (+ top 2 bits of scales 4-7 in bits
    6-7), bytes 4-7 mins 0-3 (+ top 2 bits of mins 4-7), bytes 8-11 low nibbles of scales 4-7 | low
    nibbles of mins 4-7 << 4."""
    b = [0] * 12
    for j in range(4):
        b[j] = int(sc[j]) | ((int(sc[j + 4]) >> 4) << 6)
        b[j + 4] = int(m[j]) | ((int(m[j + 4]) >> 4) << 6)
        b[j + 8] = (int(sc[j + 4]) & 15) | ((int(m[j + 4]) & 15) << 4)
    return bytes(b)


def kq_block(gt, x):
    """One super-block of 256 floats -> (bytes, deq float32[256], step float32[256])."""
    if gt in (GG_Q4_K, GG_Q5_K):
        five = gt == GG_Q5_K
        d16, dmin16, sc, m, q, deq, step = affine_subblocks(x, 32, 31 if five else 15, 6)
        # element 64c + l: low nibble of qs[32c + l]; element 64c + 32 + l: its high nibble
        qs = bytearray(128)
        qh = bytearray(32)
        for j in range(8):
            for l in range(32):
                v = int(q[j * 32 + l])
                qs[32 * (j // 2) + l] |= (v & 15) << (4 * (j % 2))
                qh[l] |= (v >> 4) << j
        out = d16.tobytes() + dmin16.tobytes() + pack_scale_min_k4(sc, m) + (bytes(qh) if five else b"") + bytes(qs)
    elif gt == GG_Q6_K:
        d16, sc, q, deq, step = symmetric_subblocks(x, 16, -32, 31, 127)
        ql, qh = bytearray(128), bytearray(64)
        for e in range(256):
            h, k, l = e // 128, (e % 128) // 32, e % 32
            u = int(q[e]) + 32  # 0..63
            ql[64 * h + l + 32 * (k & 1)] |= (u & 15) << (4 * (k >> 1))
            qh[32 * h + l] |= (u >> 4) << (2 * k)
        out = bytes(ql) + bytes(qh) + sc.astype(np.int8).tobytes() + d16.tobytes()
    elif gt == GG_Q2_K:
        d16, dmin16, sc, m, q, deq, step = affine_subblocks(x, 16, 3, 4)
        qs = bytearray(64)
        for e in range(256):
            h, k, l = e // 128, (e % 128) // 32, e % 32
            qs[32 * h + l] |= int(q[e]) << (2 * k)
        scales = bytes(int(sc[j]) | (int(m[j]) << 4) for j in range(16))
        out = scales + bytes(qs) + d16.tobytes() + dmin16.tobytes()
    elif gt == GG_Q3_K:
        d16, sc, q, deq, step = symmetric_subblocks(x, 16, -4, 3, 31)
        hm, qs = bytearray(32), bytearray(64)
        for e in range(256):
            h, k, l = e // 128, (e % 128) // 32, e % 32
            u = int(q[e]) + 4  # 0..7: low 2 bits in qs, bit 2 set = "do not subtract 4"
            qs[32 * h + l] |= (u & 3) << (2 * k)
            hm[l] |= (u >> 2) << (4 * h + k)
        s = [int(v) + 32 for v in sc]  # 6 bits with a bias of 32
        sb = [0] * 12
        for j in range(16):
            sb[j % 8] |= (s[j] & 15) << (4 * (j // 8))
            sb[8 + j % 4] |= (s[j] >> 4) << (2 * (j // 4))
        out = bytes(hm) + bytes(qs) + bytes(sb) + d16.tobytes()
    else:
        raise ValueError(gt)
    assert len(out) == KQ_BYTES[gt], (gt, len(out))
    return out, deq, step


KQ_BYTES = {GG_Q2_K: 84, GG_Q3_K: 110, GG_Q4_K: 144, GG_Q5_K: 176, GG_Q6_K: 210}


def enc_kquant(gt, x):
    """Rows of a multiple of 256 -> (bytes, dequantized values, step of each element)."""
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1, QK_K)
    parts = [kq_block(gt, b) for b in flat]
    return (b"".join(p[0] for p in parts), np.concatenate([p[1] for p in parts]).reshape(x.shape),
            np.concatenate([p[2] for p in parts]).reshape(x.shape))


for _gt, _nm in ((GG_Q2_K, "Q2_K"), (GG_Q3_K, "Q3_K"), (GG_Q4_K, "Q4_K"), (GG_Q5_K, "Q5_K"), (GG_Q6_K, "Q6_K")):
    ENC[_gt] = (lambda x, gt=_gt: enc_kquant(gt, x)[:2])
    TYPE_NAME[_gt] = _nm
    DEQ[_gt] = None  # no byte-level numpy decoder: the values come from the integer fields before packing


ORIG = {}  # tensor name -> the weights before quantization (the last fixture's)
KQ_DEQ = {}  # K-quant tensor bytes -> their dequantized values (from the encoder)


def tensor(name, x, gt):
    """x: numpy array in torch layout ([out, in] for matrices). Returns (entry, dequantized x)."""
    data, deq = ENC[gt](x)
    ne = list(reversed(np.shape(x)))  # ne[0] is the contiguous (last torch) dimension
    ORIG[name] = np.asarray(x, dtype=np.float64)
    if DEQ[gt] is None:
        KQ_DEQ[data] = deq.astype(np.float32)
    elif len(ne) == 2:  # the encoder's own dequantization agrees with the byte-level decoder below
        assert np.array_equal(dequant_bytes(gt, data, ne), deq.astype(np.float32)), name
    return (name, gt, ne, data), deq.astype(np.float64)


# ---- llama.cpp's Q/K permutation (convert_hf_to_gguf.py, LlamaModel.permute) -----------------------
def permute(w, n_head):
    """HF rotate-half row order -> interleaved pairs, per head: rows [0..Dh/2) and [Dh/2..Dh) interleave."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ---- reference forward passes (numpy, float64, HF conventions) --------------------------------------
def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def softmax_causal(s):
    T = s.shape[-1]
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def rope_hf(x, base, factor):
    """x: [heads, T, Dh]; HF LlamaRotaryEmbedding (linear scaling divides positions) + rotate_half."""
    Dh = x.shape[-1]
    inv = 1.0 / base ** (np.arange(0, Dh, 2, dtype=np.float64) / Dh)
    t = np.arange(x.shape[1], dtype=np.float64) / factor
    f = np.outer(t, inv)
    emb = np.concatenate([f, f], -1)
    x1, x2 = x[..., : Dh // 2], x[..., Dh // 2:]
    rot = np.concatenate([-x2, x1], -1)
    return x * np.cos(emb) + rot * np.sin(emb)


def llama_forward(c, W, tokens):
    H, Hkv, Dh = c["heads"], c["kv_heads"], c["dim"] // c["heads"]
    x = W["embed"][tokens]
    T = len(tokens)
    atts = []
    for l in range(c["layers"]):
        p = W["layers"][l]
        h = rms_norm(x, p["attn_norm"], c["eps"])
        q = h @ p["wq"].T + (p["bq"] if "bq" in p else 0)
        k = h @ p["wk"].T + (p["bk"] if "bk" in p else 0)
        v = h @ p["wv"].T + (p["bv"] if "bv" in p else 0)
        q = q.reshape(T, H, Dh).transpose(1, 0, 2)
        k = k.reshape(T, Hkv, Dh).transpose(1, 0, 2)
        v = v.reshape(T, Hkv, Dh).transpose(1, 0, 2)
        q = rope_hf(q, c["rope_base"], c["rope_factor"])
        k = rope_hf(k, c["rope_base"], c["rope_factor"])
        g = H // Hkv
        k = np.repeat(k, g, axis=0)  # query head h uses K/V head h // g (HF repeat_kv)
        v = np.repeat(v, g, axis=0)
        a = softmax_causal(q @ k.transpose(0, 2, 1) / np.sqrt(Dh))
        atts.append(a)
        o = (a @ v).transpose(1, 0, 2).reshape(T, H * Dh)
        x = x + o @ p["wo"].T
        h = rms_norm(x, p["ffn_norm"], c["eps"])
        gate = h @ p["w_gate"].T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ p["w_up"].T)) @ p["w_down"].T
    x = rms_norm(x, W["norm"], c["eps"])
    logits = x @ (W["lm_head"] if "lm_head" in W else W["embed"]).T
    return logits, np.stack(atts)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def gpt2_forward(c, W, tokens):
    H, D = c["heads"], c["dim"]
    Dh = D // H
    T = len(tokens)
    x = W["wte"][tokens] + W["wpe"][:T]
    atts = []
    for l in range(c["layers"]):
        p = W["layers"][l]
        h = layer_norm(x, p["ln1_w"], p["ln1_b"], c["eps"])
        qkv = h @ p["qkv_w"].T + p["qkv_b"]  # [T, 3D]: q, k, v
        q, k, v = (qkv[:, i * D:(i + 1) * D].reshape(T, H, Dh).transpose(1, 0, 2) for i in range(3))
        a = softmax_causal(q @ k.transpose(0, 2, 1) / np.sqrt(Dh))
        atts.append(a)
        o = (a @ v).transpose(1, 0, 2).reshape(T, D)
        x = x + o @ p["proj_w"].T + p["proj_b"]
        h = layer_norm(x, p["ln2_w"], p["ln2_b"], c["eps"])
        x = x + gelu_tanh(h @ p["up_w"].T + p["up_b"]) @ p["down_w"].T + p["down_b"]
    x = layer_norm(x, W["lnf_w"], W["lnf_b"], c["eps"])
    return x @ W["wte"].T, np.stack(atts)


# ---- fixtures ------------------------------------------------------------------------------------
def llama_vocab(V):
    toks = ["<unk>", "<s>", "</s>", "<0x0A>", "▁"] + [chr(ord("a") + i) for i in range(26)] + ["▁a"]
    toks = toks[:V] + [f"▁w{i}" for i in range(V - len(toks))]
    types = [2, 3, 3, 6] + [1] * (V - 4)
    scores = [0.0] * 4 + [-float(i) for i in range(V - 4)]
    return [("tokenizer.ggml.model", T_STR, "llama"),
            ("tokenizer.ggml.tokens", T_ARR, (T_STR, toks)),
            ("tokenizer.ggml.scores", T_ARR, (T_F32, scores)),
            ("tokenizer.ggml.token_type", T_ARR, (T_I32, types)),
            ("tokenizer.ggml.bos_token_id", T_U32, 1),
            ("tokenizer.ggml.eos_token_id", T_U32, 2),
            ("tokenizer.ggml.unknown_token_id", T_U32, 0)]


def make_llama(name, c, seed, wtype, embd_type=GG_F32, alignment=32, extra_kv=(), wtypes=None):
    """wtypes: {"attn_q": type, ...} overrides wtype per matrix (a Q4_K_M-like mix); with it, the
    forward pass of the unquantized weights is saved too (<name>.logits_f32.npy)."""
    rng = np.random.default_rng(seed)
    ORIG.clear()

    def wt(kind):
        return (wtypes or {}).get(kind, wtype)

    V, D, L, H, Hkv, F = c["vocab"], c["dim"], c["layers"], c["heads"], c["kv_heads"], c["ffn"]
    Dh = D // H

    def lin(o, i):
        return rng.normal(0, 1.0 / np.sqrt(i), (o, i))

    entries, W = [], {"layers": []}
    e, W["embed"] = tensor("token_embd.weight", rng.normal(0, 1.0, (V, D)), embd_type)
    entries.append(e)
    for l in range(L):
        p = {}
        b = f"blk.{l}."
        e, p["attn_norm"] = tensor(b + "attn_norm.weight", 1 + 0.1 * rng.normal(size=D), GG_F32)
        entries.append(e)
        # Q and K: the reference keeps HF's order; the file holds llama.cpp's permuted rows.
        wq, wk, wv = lin(H * Dh, D) * 2.0, lin(Hkv * Dh, D) * 2.0, lin(Hkv * Dh, D)
        e, wq_file = tensor(b + "attn_q.weight", permute(wq, H), wt("attn_q"))
        entries.append(e)
        p["wq"] = permute_back(wq_file, H)
        e, wk_file = tensor(b + "attn_k.weight", permute(wk, Hkv), wt("attn_k"))
        entries.append(e)
        p["wk"] = permute_back(wk_file, Hkv)
        e, p["wv"] = tensor(b + "attn_v.weight", wv, wt("attn_v"))
        entries.append(e)
        if c.get("qkv_bias"):
            bq, bk, bv = (0.3 * rng.normal(size=n) for n in (H * Dh, Hkv * Dh, Hkv * Dh))
            e, bq_file = tensor(b + "attn_q.bias", permute(bq, H), GG_F32)
            entries.append(e)
            p["bq"] = permute_back(bq_file, H)
            e, bk_file = tensor(b + "attn_k.bias", permute(bk, Hkv), GG_F32)
            entries.append(e)
            p["bk"] = permute_back(bk_file, Hkv)
            e, p["bv"] = tensor(b + "attn_v.bias", bv, GG_F32)
            entries.append(e)
        e, p["wo"] = tensor(b + "attn_output.weight", lin(D, H * Dh), wt("attn_output"))
        entries.append(e)
        e, p["ffn_norm"] = tensor(b + "ffn_norm.weight", 1 + 0.1 * rng.normal(size=D), GG_F32)
        entries.append(e)
        e, p["w_gate"] = tensor(b + "ffn_gate.weight", lin(F, D), wt("ffn_gate"))
        entries.append(e)
        e, p["w_up"] = tensor(b + "ffn_up.weight", lin(F, D), wt("ffn_up"))
        entries.append(e)
        e, p["w_down"] = tensor(b + "ffn_down.weight", lin(D, F), wt("ffn_down"))
        entries.append(e)
        W["layers"].append(p)
    e, W["norm"] = tensor("output_norm.weight", 1 + 0.1 * rng.normal(size=D), GG_F32)
    entries.append(e)
    if not c["tied"]:
        e, W["lm_head"] = tensor("output.weight", lin(V, D), wt("output"))
        entries.append(e)

    kvs = [("general.architecture", T_STR, "llama"), ("general.name", T_STR, name)]
    if alignment != 32:
        kvs.append(("general.alignment", T_U32, alignment))
    kvs += [("llama.context_length", T_U32, 64), ("llama.embedding_length", T_U32, D),
            ("llama.block_count", T_U32, L), ("llama.feed_forward_length", T_U32, F),
            ("llama.attention.head_count", T_U32, H), ("llama.attention.head_count_kv", T_U32, Hkv),
            ("llama.rope.dimension_count", T_U32, Dh),
            ("llama.attention.layer_norm_rms_epsilon", T_F32, c["eps"])]
    kvs += list(extra_kv)
    kvs += llama_vocab(V)
    if wtypes:  # the same model before quantization: what the quantized file's outputs are compared to
        W0 = {"embed": ORIG["token_embd.weight"], "norm": W["norm"], "layers": []}
        if "lm_head" in W:
            W0["lm_head"] = ORIG["output.weight"]
        for l, p in enumerate(W["layers"]):
            b = f"blk.{l}."
            p0 = dict(p)
            p0["wq"] = permute_back(ORIG[b + "attn_q.weight"], H)
            p0["wk"] = permute_back(ORIG[b + "attn_k.weight"], Hkv)
            for key, nm in (("wv", "attn_v"), ("wo", "attn_output"), ("w_gate", "ffn_gate"), ("w_up", "ffn_up"),
                            ("w_down", "ffn_down")):
                p0[key] = ORIG[b + nm + ".weight"]
            W0["layers"].append(p0)
        np.save(os.path.join(OUT, name + ".logits_f32.npy"), llama_forward(c, W0, TOKENS)[0].astype(np.float32))
    return finish(name, kvs, entries, alignment, llama_forward(c, W, TOKENS), c)


def permute_back(w_file, n_head):
    """Inverse of permute(): the file's interleaved rows back to HF's order (for the reference)."""
    shape = w_file.shape
    return w_file.reshape(n_head, w_file.shape[0] // n_head // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def make_gpt2(name, c, seed):
    rng = np.random.default_rng(seed)
    V, D, L, F, ctx = c["vocab"], c["dim"], c["layers"], c["ffn"], c["context"]
    entries, W = [], {"layers": []}

    def add(nm, x):
        e, d = tensor(nm, x, GG_F32)
        entries.append(e)
        return d

    W["wte"] = add("token_embd.weight", rng.normal(0, 1.0, (V, D)))
    W["wpe"] = add("position_embd.weight", rng.normal(0, 0.5, (ctx, D)))
    for l in range(L):
        b = f"blk.{l}."
        p = {}
        p["ln1_w"] = add(b + "attn_norm.weight", 1 + 0.1 * rng.normal(size=D))
        p["ln1_b"] = add(b + "attn_norm.bias", 0.1 * rng.normal(size=D))
        p["qkv_w"] = add(b + "attn_qkv.weight", rng.normal(0, 2.0 / np.sqrt(D), (3 * D, D)))
        p["qkv_b"] = add(b + "attn_qkv.bias", 0.2 * rng.normal(size=3 * D))
        p["proj_w"] = add(b + "attn_output.weight", rng.normal(0, 1.0 / np.sqrt(D), (D, D)))
        p["proj_b"] = add(b + "attn_output.bias", 0.1 * rng.normal(size=D))
        p["ln2_w"] = add(b + "ffn_norm.weight", 1 + 0.1 * rng.normal(size=D))
        p["ln2_b"] = add(b + "ffn_norm.bias", 0.1 * rng.normal(size=D))
        p["up_w"] = add(b + "ffn_up.weight", rng.normal(0, 1.0 / np.sqrt(D), (F, D)))
        p["up_b"] = add(b + "ffn_up.bias", 0.1 * rng.normal(size=F))
        p["down_w"] = add(b + "ffn_down.weight", rng.normal(0, 1.0 / np.sqrt(F), (D, F)))
        p["down_b"] = add(b + "ffn_down.bias", 0.1 * rng.normal(size=D))
        W["layers"].append(p)
    W["lnf_w"] = add("output_norm.weight", 1 + 0.1 * rng.normal(size=D))
    W["lnf_b"] = add("output_norm.bias", 0.1 * rng.normal(size=D))

    def byte_char(b):  # GPT-2's bytes_to_unicode
        printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
        if b in printable:
            return chr(b)
        return chr(256 + [x for x in range(256) if x not in printable].index(b))

    toks = [byte_char(b) for b in range(0x20, 0x20 + V)]  # "Ġ", "!", '"', ... : single bytes only
    kvs = [("general.architecture", T_STR, "gpt2"), ("general.name", T_STR, name),
           ("gpt2.context_length", T_U32, ctx), ("gpt2.embedding_length", T_U32, D),
           ("gpt2.block_count", T_U32, L), ("gpt2.feed_forward_length", T_U32, F),
           ("gpt2.attention.head_count", T_U32, c["heads"]),
           ("gpt2.attention.layer_norm_epsilon", T_F32, c["eps"]),
           ("tokenizer.ggml.model", T_STR, "gpt2"),
           ("tokenizer.ggml.tokens", T_ARR, (T_STR, toks)),
           ("tokenizer.ggml.token_type", T_ARR, (T_I32, [1] * V)),
           ("tokenizer.ggml.merges", T_ARR, (T_STR, [])),
           ("tokenizer.ggml.add_bos_token", T_BOOL, False)]
    return finish(name, kvs, entries, 32, gpt2_forward(c, W, TOKENS), c)


def finish(name, kvs, entries, alignment, ref, c):
    size = write_gguf(os.path.join(OUT, name + ".gguf"), kvs, entries, alignment)
    logits, att = ref
    np.save(os.path.join(OUT, name + ".logits.npy"), logits.astype(np.float32))
    np.save(os.path.join(OUT, name + ".attn.npy"), att.astype(np.float32))
    # One matrix as the file stores it, dequantized by this script: a loader-only check of F16/Q8_0/Q4_0.
    for nm, gt, ne, data in entries:
        if nm in ("blk.0.attn_k.weight", "blk.0.attn_qkv.weight"):
            deq = KQ_DEQ[data] if DEQ[gt] is None else DEQ[gt](data, ne)
            np.save(os.path.join(OUT, name + ".blk0_k.npy"), deq.astype(np.float32))
    types = sorted({TYPE_NAME[e[1]] for e in entries})
    return name, size, types, c


def rope_adjacent(x, base, factor):
    """llama.cpp's normal RoPE: pairs (x[2i], x[2i+1]) rotated by pos/factor * base^(-2i/Dh)."""
    Dh = x.shape[-1]
    inv = 1.0 / base ** (np.arange(0, Dh, 2, dtype=np.float64) / Dh)
    ang = np.outer(np.arange(x.shape[1], dtype=np.float64) / factor, inv)  # [T, Dh/2]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * np.cos(ang) - b * np.sin(ang)
    out[..., 1::2] = a * np.sin(ang) + b * np.cos(ang)
    return out


def self_check():
    """The convention the fixtures rely on: adjacent-pair RoPE on permuted rows == HF RoPE on HF rows."""
    rng = np.random.default_rng(0)
    H, Dh, D, T = 3, 8, 5, 6
    w = rng.normal(size=(H * Dh, D))
    assert np.array_equal(permute_back(permute(w, H), H), w)
    x = rng.normal(size=(T, D))
    hf = rope_hf((x @ w.T).reshape(T, H, Dh).transpose(1, 0, 2), 100.0, 2.0)
    cpp = rope_adjacent((x @ permute(w, H).T).reshape(T, H, Dh).transpose(1, 0, 2), 100.0, 2.0)
    assert np.allclose(permute(hf.transpose(1, 0, 2).reshape(T, H * Dh).T, H).T.reshape(T, H, Dh).transpose(1, 0, 2), cpp)


def write_fuzz_seeds(folder):
    """Small seeds for tests/fuzz/fuzz_gguf: every value type (nested arrays too), every tensor type
    (the K-quants in kquants.gguf), both tokenizers; plus a copy of the smallest fixture."""
    os.makedirs(folder, exist_ok=True)
    kvs = [("u8", T_U8, 7), ("i8", T_I8, -7), ("u16", T_U16, 700), ("i16", T_I16, -700), ("u32", T_U32, 70000),
           ("i32", T_I32, -70000), ("f32", T_F32, 0.5), ("b", T_BOOL, True), ("s", T_STR, "héllo"),
           ("u64", T_U64, 1 << 40), ("i64", T_I64, -(1 << 40)), ("f64", T_F64, 0.25),
           ("nested", T_ARR, (T_ARR, [(T_U8, [1, 2]), (T_STR, ["x", "yz"])])),
           ("general.alignment", T_U32, 16)]
    bf16 = (np.array([1.0, -3.0, 0.15625, 0.0], np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    rng = np.random.default_rng(9)
    tensors = [("f32", GG_F32, [3], enc_f32(np.array([1.0, 2.0, 3.0]))[0]),
               ("f16", GG_F16, [2, 2], enc_f16(np.array([[1.0, -2.0], [0.5, 4.0]]))[0]),
               ("bf16", 30, [4], bf16),
               ("q8", GG_Q8_0, [32, 1], enc_q8_0(rng.normal(size=(1, 32)))[0]),
               ("q4", GG_Q4_0, [32, 1], enc_q4_0(rng.normal(size=(1, 32)))[0])]
    write_gguf(os.path.join(folder, "all_types.gguf"), kvs, tensors, alignment=16)
    gpt2 = [("tokenizer.ggml.model", T_STR, "gpt2"),
            ("tokenizer.ggml.tokens", T_ARR, (T_STR, ["Ġ", "t", "h", "e", "Ġt", "he", "Ġthe", "<|endoftext|>"])),
            ("tokenizer.ggml.token_type", T_ARR, (T_I32, [1, 1, 1, 1, 1, 1, 1, 3])),
            ("tokenizer.ggml.merges", T_ARR, (T_STR, ["Ġ t", "h e", "Ġt he"])),
            ("tokenizer.ggml.bos_token_id", T_U32, 7), ("tokenizer.ggml.eos_token_id", T_U32, 7)]
    kq = [(TYPE_NAME[gt].lower(), gt, [256, 1], enc_kquant(gt, rng.normal(size=(1, 256)))[0])
          for gt in (GG_Q2_K, GG_Q3_K, GG_Q4_K, GG_Q5_K, GG_Q6_K)]
    write_gguf(os.path.join(folder, "kquants.gguf"), [("general.name", T_STR, "kquants")], kq)
    write_gguf(os.path.join(folder, "gpt2_tokenizer.gguf"), gpt2, [])
    write_gguf(os.path.join(folder, "llama_tokenizer.gguf"), llama_vocab(32),
               [("token_embd.weight", GG_F32, [2, 32], enc_f32(np.zeros((32, 2)))[0])])
    with open(os.path.join(OUT, "llama_q4_0_untied.gguf"), "rb") as src:
        data = src.read()
    with open(os.path.join(folder, "llama_q4_0_untied.gguf"), "wb") as dst:
        dst.write(data)


def make_kquant_blocks():
    """kquant_blocks.gguf: for each K-quant type a [3, 512] tensor (6 super-blocks) quantized by the
    encoders above, and beside it, as F32 tensors, the weights before quantization (<type>.x), the
    expected dequantized values (<type>.deq) and each element's step (<type>.step). Rows: small
    weights with one all-zero sub-block, mostly positive weights, large weights."""
    rng = np.random.default_rng(12)
    kvs = [("general.name", T_STR, "kquant_blocks")]
    tensors = []
    for gt in (GG_Q2_K, GG_Q3_K, GG_Q4_K, GG_Q5_K, GG_Q6_K):
        x = rng.normal(size=(3, 512)) * np.array([[0.01], [1.0], [30.0]]) + np.array([[0.0], [3.0], [0.0]])
        x[0, :32] = 0.0
        x = x.astype(np.float32)
        data, deq, step = enc_kquant(gt, x)
        err = np.abs(deq.astype(np.float64) - x.astype(np.float64))
        assert np.all(err <= 0.5 * step.astype(np.float64) * (1 + 1e-6) + 1e-7 * np.abs(x)), TYPE_NAME[gt]
        nm = TYPE_NAME[gt].lower()
        tensors += [(nm, gt, [512, 3], data), (nm + ".x", GG_F32, [512, 3], enc_f32(x)[0]),
                    (nm + ".deq", GG_F32, [512, 3], enc_f32(deq)[0]), (nm + ".step", GG_F32, [512, 3], enc_f32(step)[0])]
    size = write_gguf(os.path.join(OUT, "kquant_blocks.gguf"), kvs, tensors)
    return "kquant_blocks", size, ["F32", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"], {"shape": "[3, 512] each"}


def main():
    self_check()
    os.makedirs(OUT, exist_ok=True)
    rows = []
    # GQA ratio 1 (plain multi-head), tied output, all F32, no rope base key (default 10000).
    rows.append(make_llama("llama_mha_f32", dict(vocab=32, dim=16, layers=2, heads=2, kv_heads=2, ffn=24,
                                                 tied=True, eps=1e-5, rope_base=10000.0, rope_factor=1.0),
                           seed=1, wtype=GG_F32))
    # GQA ratio 4, untied output, F16 matrices, rope base 500000, general.alignment 64.
    rows.append(make_llama("llama_gqa4_f16_untied", dict(vocab=32, dim=32, layers=2, heads=8, kv_heads=2, ffn=40,
                                                         tied=False, eps=1e-6, rope_base=500000.0, rope_factor=1.0),
                           seed=2, wtype=GG_F16, alignment=64,
                           extra_kv=[("llama.rope.freq_base", T_F32, 500000.0)]))
    # Qwen2-style q/k/v biases on the llama architecture, Q8_0 matrices (the embedding too), linear
    # RoPE scaling x4, GQA ratio 2, tied output.
    rows.append(make_llama("llama_qkvbias_q8_0_ropelinear", dict(vocab=32, dim=32, layers=2, heads=4, kv_heads=2,
                                                                 ffn=64, tied=True, eps=1e-5, rope_base=10000.0,
                                                                 rope_factor=4.0, qkv_bias=True),
                           seed=3, wtype=GG_Q8_0, embd_type=GG_Q8_0,
                           extra_kv=[("llama.rope.scaling.type", T_STR, "linear"),
                                     ("llama.rope.scaling.factor", T_F32, 4.0)]))
    # Q4_0 matrices, GQA ratio 4 (one K/V head), untied Q4_0 output, one layer.
    rows.append(make_llama("llama_q4_0_untied", dict(vocab=32, dim=32, layers=1, heads=4, kv_heads=1, ffn=64,
                                                     tied=False, eps=1e-5, rope_base=10000.0, rope_factor=1.0),
                           seed=4, wtype=GG_Q4_0, embd_type=GG_Q4_0))
    # gpt2: learned positions, LayerNorm with biases, fused qkv, tanh GELU, tied output.
    rows.append(make_gpt2("gpt2_tiny", dict(vocab=64, dim=16, layers=2, heads=2, ffn=64, context=16, eps=1e-5),
                          seed=5))
    # K-quants as a Q4_K_M file mixes them: Q4_K embedding, Q/K, gate/up; Q5_K attn_output; Q6_K V, down
    # and output. Rows of 256 (one super-block); untied output; GQA ratio 2.
    rows.append(make_llama("llama_kquant_mixed", dict(vocab=32, dim=256, layers=1, heads=4, kv_heads=2, ffn=256,
                                                      tied=False, eps=1e-5, rope_base=10000.0, rope_factor=1.0),
                           seed=6, wtype=GG_Q4_K, embd_type=GG_Q4_K,
                           wtypes={"attn_v": GG_Q6_K, "attn_output": GG_Q5_K, "ffn_down": GG_Q6_K,
                                   "output": GG_Q6_K}))
    rows.append(make_kquant_blocks())
    write_fuzz_seeds(os.path.join(OUT, "..", "..", "fuzz", "corpus", "gguf"))
    for name, size, types, c in rows:
        print(f"{name}.gguf  {size} bytes  {'/'.join(types)}  "
              + " ".join(f"{k}={v}" for k, v in c.items()))


if __name__ == "__main__":
    main()
