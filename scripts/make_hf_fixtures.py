#!/usr/bin/python3
"""Writes tiny Hugging Face model directories with random weights (the real file layout and tensor
names of each family) and reference outputs into tests/data/hf/, from reference forward passes
written here in plain PyTorch after the published architectures (transformers is not used).

Run once with Debian's python3-torch:  /usr/bin/python3 scripts/make_hf_fixtures.py [OUT_DIR]

Each family directory <name>/ holds config.json, model.safetensors (or shards + index) and the
tokenizer files; <name>.ref.safetensors beside it holds the input ids ("ids", int values stored as
F32), every layer's attention ("attn.<L>" [H, T, T]), and "logits" [T, V] or "hidden" [T, D]
(plus "hidden.<L>" after each layer for encoders), computed in float64 from the stored weights.
Tokenizer expectations (text and the ids this script's own tokenizer code gives) are in the
reference's metadata.
"""
import json
import math
import os
import struct
import sys

import torch

torch.manual_seed(19)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "hf")
F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# safetensors writer (the format: u64 header length, JSON header, raw little-endian data)
DT = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        tt = t.detach().to(DT[dtype][0]).contiguous()
        raw = tt.view(torch.int16).numpy().tobytes() if DT[dtype][1] == 2 else tt.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(tt.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def stored(t, dtype):
    """The values the file holds (rounded to its dtype), as float64 for the reference."""
    return t.detach().to(DT[dtype][0]).to(F64)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def rnd(*shape, std=0.2):
    return torch.randn(*shape) * std


def ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def attention(q, k, v, causal):
    # q: [H, T, Dh], k/v: [H, S, Dh] -> out [H, T, Dh], weights [H, T, S]
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        T = q.shape[1]
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    w = torch.softmax(s, -1)
    return w @ v, w


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


# ---------------------------------------------------------------------------------------------
# GPT-2 byte-level BPE (the scheme of openai/gpt-2 encoder.py), for the tiny vocabulary
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gpt2_pieces(text):
    # GPT-2's regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ for
    # the characters the test texts use (letters, digits, ASCII punctuation, spaces, é, 日本)
    out, i = [], 0
    L = lambda c: c.isalpha()
    N = lambda c: c.isdigit()
    S = lambda c: c.isspace()
    while i < len(text):
        for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if text.startswith(c, i):
                out.append(c)
                i += len(c)
                break
        else:
            j = i + 1 if text[i] == " " and i + 1 < len(text) and not S(text[i + 1]) else i
            if j < len(text) and L(text[j]):
                k = j
                while k < len(text) and L(text[k]):
                    k += 1
            elif j < len(text) and N(text[j]):
                k = j
                while k < len(text) and N(text[k]):
                    k += 1
            elif j < len(text) and not S(text[j]):
                k = j
                while k < len(text) and not (S(text[k]) or L(text[k]) or N(text[k])):
                    k += 1
            else:
                k = i
                while k < len(text) and S(text[k]):
                    k += 1
                if k < len(text) and k - i > 1:
                    k -= 1  # \s+(?!\S): leave the last space for the next word
            out.append(text[i:k])
            i = k
    return out


def bpe(word, ranks):
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((parts[i], parts[i + 1]), 1e9), i) for i in range(len(parts) - 1)]
        r, i = min(pairs)
        if r == 1e9:
            break
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return parts


def gpt2_encode(text, vocab, merges):
    b2u = bytes_to_unicode()
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    ids = []
    for p in gpt2_pieces(text):
        u = "".join(b2u[b] for b in p.encode("utf-8"))
        ids += [vocab[t] for t in bpe(u, ranks)]
    return ids


def gpt2_vocab():
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġ c", "a t", "Ġc at", "o n", "Ġ m", "Ġm at", "Ġ s",
              "i t", "Ġs at", "Ġo n", "l l", "e ll", "H ell", "Hell o", "Ã ©"]
    for m in merges:
        a, b = m.split(" ")
        if a + b not in tokens:
            tokens.append(a + b)
    tokens.append("<|endoftext|>")
    return {t: i for i, t in enumerate(tokens)}, merges


# ---------------------------------------------------------------------------------------------
def make_gpt2(name="gpt2-tiny"):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    vocab, merges = gpt2_vocab()
    V, D, H, L, P = len(vocab), 16, 2, 2, 32
    F = 4 * D
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V, "n_embd": D, "n_head": H,
           "n_layer": L, "n_positions": P, "n_ctx": P, "n_inner": None, "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-5, "bos_token_id": V - 1, "eos_token_id": V - 1}
    w = {"transformer.wte.weight": rnd(V, D), "transformer.wpe.weight": rnd(P, D, std=0.05)}
    for l in range(L):
        p = f"transformer.h.{l}."
        w[p + "ln_1.weight"] = 1 + rnd(D, std=0.1)
        w[p + "ln_1.bias"] = rnd(D, std=0.1)
        w[p + "attn.c_attn.weight"] = rnd(D, 3 * D, std=0.4)   # Conv1D: [in, out]
        w[p + "attn.c_attn.bias"] = rnd(3 * D, std=0.1)
        w[p + "attn.c_proj.weight"] = rnd(D, D)
        w[p + "attn.c_proj.bias"] = rnd(D, std=0.05)
        w[p + "ln_2.weight"] = 1 + rnd(D, std=0.1)
        w[p + "ln_2.bias"] = rnd(D, std=0.1)
        w[p + "mlp.c_fc.weight"] = rnd(D, F)
        w[p + "mlp.c_fc.bias"] = rnd(F, std=0.05)
        w[p + "mlp.c_proj.weight"] = rnd(F, D)
        w[p + "mlp.c_proj.bias"] = rnd(D, std=0.05)
        w[p + "attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P)   # the causal-mask buffer old files keep
    w["transformer.ln_f.weight"] = 1 + rnd(D, std=0.1)
    w["transformer.ln_f.bias"] = rnd(D, std=0.1)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "vocab.json"), vocab)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")

    text = "Hello the cat sat on the mat. Café 日本 it's 42!"
    ids = gpt2_encode(text, vocab, merges)
    W = {k: stored(v, "F32") for k, v in w.items()}
    T = len(ids)
    x = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T]
    ref = {"ids": torch.tensor(ids, dtype=torch.float32)}
    Dh = D // H
    for l in range(L):
        p = f"transformer.h.{l}."
        a = ln(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], 1e-5)
        qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = [t.view(T, H, Dh).transpose(0, 1) for t in qkv.split(D, -1)]
        o, att = attention(q, k, v, True)
        ref[f"attn.{l}"] = att
        x = x + o.transpose(0, 1).reshape(T, D) @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = ln(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], 1e-5)
        x = x + gelu_tanh(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]) @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = ln(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], 1e-5)
    ref["logits"] = x @ W["transformer.wte.weight"].T
    write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref, metadata={"text": text, "ids": json.dumps(ids)})


# ---------------------------------------------------------------------------------------------
def llama_vocab():
    """A SentencePiece-style BPE vocabulary with byte fallback as tokenizer.json stores it."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    chars = ["▁", "e", "t", "h", "a", "o", "n", "s", "c", "m", "r", "i", "d", "l", "y", "T", "O", "u", "w", "g"]
    tokens += chars
    merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("▁", "a"), ("o", "n"), ("▁", "c"), ("a", "t"), ("▁c", "at"),
              ("▁", "s"), ("▁s", "at"), ("▁", "o"), ("▁o", "n"), ("▁", "m"), ("▁m", "at"), ("e", "r"), ("▁", "T"),
              ("▁T", "he")]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    return tokens, merges


def spm_encode(text, tokens, merges):
    """Byte-fallback BPE: '▁' + text with spaces as '▁', merges by rank, unknown chars as bytes."""
    ranks = {m: i for i, m in enumerate(merges)}
    s = "▁" + text.replace(" ", "▁")
    parts = list(s)
    while len(parts) > 1:
        best = min(((ranks.get((parts[i], parts[i + 1]), 1e9), i) for i in range(len(parts) - 1)))
        if best[0] == 1e9:
            break
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    idx = {t: i for i, t in enumerate(tokens)}
    ids = []
    for p in parts:
        if p in idx:
            ids.append(idx[p])
        else:
            ids += [idx[f"<0x{b:02X}>"] for b in p.encode("utf-8")]
    return ids


def rope_halves(x, base, scale):
    # x: [H, T, Dh]; Hugging Face Llama: rotate_half pairs (i, i + Dh/2)
    H, T, Dh = x.shape
    inv = 1.0 / (base ** (torch.arange(0, Dh, 2, dtype=F64) / Dh))
    t = torch.arange(T, dtype=F64) / scale
    f = torch.outer(t, inv)
    emb = torch.cat([f, f], -1)
    x1, x2 = x[..., : Dh // 2], x[..., Dh // 2:]
    rot = torch.cat([-x2, x1], -1)
    return x * emb.cos() + rot * emb.sin()


def make_llama(name, D=24, H=4, Hkv=2, L=2, F=40, tied=False, dtype="F32", shards=1, rope_scaling=None,
               attention_bias=False):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tokens, merges = llama_vocab()
    V, Dh, P = len(tokens), D // H, 64
    # attention_bias here means Qwen2's q/k/v biases (Llama's attention_bias also biases o_proj)
    cfg = {"model_type": "qwen2" if attention_bias else "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": V, "hidden_size": D,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": Hkv,
           "max_position_embeddings": P, "rms_norm_eps": 1e-6, "rope_theta": 500.0, "hidden_act": "silu",
           "tie_word_embeddings": tied, "rope_scaling": rope_scaling,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]}
    w = {"model.embed_tokens.weight": rnd(V, D, std=0.5)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + rnd(D, std=0.1)
        w[p + "self_attn.q_proj.weight"] = rnd(H * Dh, D, std=0.4)
        w[p + "self_attn.k_proj.weight"] = rnd(Hkv * Dh, D, std=0.4)
        w[p + "self_attn.v_proj.weight"] = rnd(Hkv * Dh, D, std=0.4)
        if attention_bias:
            w[p + "self_attn.q_proj.bias"] = rnd(H * Dh, std=0.1)
            w[p + "self_attn.k_proj.bias"] = rnd(Hkv * Dh, std=0.1)
            w[p + "self_attn.v_proj.bias"] = rnd(Hkv * Dh, std=0.1)
        w[p + "self_attn.o_proj.weight"] = rnd(D, H * Dh)
        w[p + "post_attention_layernorm.weight"] = 1 + rnd(D, std=0.1)
        w[p + "mlp.gate_proj.weight"] = rnd(F, D)
        w[p + "mlp.up_proj.weight"] = rnd(F, D)
        w[p + "mlp.down_proj.weight"] = rnd(D, F)
    w["model.norm.weight"] = 1 + rnd(D, std=0.1)
    if not tied:
        w["lm_head.weight"] = rnd(V, D)
    names = list(w)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), w, dtype)
    else:
        per = (len(names) + shards - 1) // shards
        wm = {}
        for s in range(shards):
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: w[n] for n in names[s * per:(s + 1) * per]}
            write_safetensors(os.path.join(d, fn), part, dtype)
            wm.update({n: fn for n in part})
        write_json(os.path.join(d, "model.safetensors.index.json"), {"metadata": {"total_size": 0}, "weight_map": wm})
    write_json(os.path.join(d, "config.json"), cfg)
    tj = {"version": "1.0", "added_tokens": [
        {"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
        {"id": 2, "content": "</s>", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                          {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None, "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": [f"{a} {b}" for a, b in merges]}}
    write_json(os.path.join(d, "tokenizer.json"), tj)

    text = "The cat sat on the mat. Où? 猫"
    ids = [1] + spm_encode(text, tokens, merges)
    W = {k: stored(v, dtype) for k, v in w.items()}
    T = len(ids)
    scale = rope_scaling["factor"] if rope_scaling else 1.0

    def rms(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * g

    x = W["model.embed_tokens.weight"][ids]
    ref = {"ids": torch.tensor(ids, dtype=torch.float32)}
    for l in range(L):
        p = f"model.layers.{l}."
        a = rms(x, W[p + "input_layernorm.weight"])
        q = a @ W[p + "self_attn.q_proj.weight"].T
        k = a @ W[p + "self_attn.k_proj.weight"].T
        v = a @ W[p + "self_attn.v_proj.weight"].T
        if attention_bias:
            q, k, v = q + W[p + "self_attn.q_proj.bias"], k + W[p + "self_attn.k_proj.bias"], v + W[p + "self_attn.v_proj.bias"]
        q = rope_halves(q.view(T, H, Dh).transpose(0, 1), 500.0, scale)
        k = rope_halves(k.view(T, Hkv, Dh).transpose(0, 1), 500.0, scale)
        v = v.view(T, Hkv, Dh).transpose(0, 1)
        k = k.repeat_interleave(H // Hkv, 0)   # query head h reads K/V head h // (H / Hkv)
        v = v.repeat_interleave(H // Hkv, 0)
        o, att = attention(q, k, v, True)
        ref[f"attn.{l}"] = att
        x = x + o.transpose(0, 1).reshape(T, H * Dh) @ W[p + "self_attn.o_proj.weight"].T
        m = rms(x, W[p + "post_attention_layernorm.weight"])
        g = m @ W[p + "mlp.gate_proj.weight"].T
        x = x + (g * torch.sigmoid(g) * (m @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["model.norm.weight"])
    ref["logits"] = x @ (W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]).T
    write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref, metadata={"text": text, "ids": json.dumps(ids)})


# ---------------------------------------------------------------------------------------------
BERT_WORDS = ["the", "cat", "sat", "on", "mat", "dog", "a", "is", "un", "##aff", "##able", "hello", "world", "cafe",
              "he", "##llo", "##s", "it", "was", "not", "very", "good", "day", "." , ",", "!", "?", "'", "日", "本",
              "##a", "##t", "c", "d", "##o", "##g", "##e", "s", "m"]


def bert_basic(text, lower=True):
    import unicodedata
    out = []
    for w in text.split():
        if lower:
            w = w.lower()
            w = "".join(c for c in unicodedata.normalize("NFD", w) if unicodedata.category(c) != "Mn")
        cur = ""
        for c in w:
            cp = ord(c)
            punct = (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126) or unicodedata.category(c).startswith("P")
            cjk = 0x4E00 <= cp <= 0x9FFF
            if punct or cjk:
                if cur:
                    out.append(cur)
                cur = ""
                out.append(c)
            else:
                cur += c
        if cur:
            out.append(cur)
    return out


def wordpiece(word, vocab):
    out, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in vocab:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        out.append(sub)
        start = end
    return out


def bert_weights(kind, V, D, H, L, F, P, types):
    """State dict of a BertModel / RobertaModel / DistilBertModel with the family's names."""
    w = {}
    if kind == "distilbert":
        e = "distilbert.embeddings."
        w[e + "word_embeddings.weight"] = rnd(V, D, std=0.5)
        w[e + "position_embeddings.weight"] = rnd(P, D)
        w[e + "LayerNorm.weight"] = 1 + rnd(D, std=0.1)
        w[e + "LayerNorm.bias"] = rnd(D, std=0.1)
        names = {"q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin", "o": "attention.out_lin",
                 "ln1": "sa_layer_norm", "up": "ffn.lin1", "down": "ffn.lin2", "ln2": "output_layer_norm"}
        lp = "distilbert.transformer.layer."
    else:
        e = kind + ".embeddings."
        w[e + "word_embeddings.weight"] = rnd(V, D, std=0.5)
        w[e + "position_embeddings.weight"] = rnd(P, D)
        w[e + "token_type_embeddings.weight"] = rnd(types, D)
        w[e + "LayerNorm.weight"] = 1 + rnd(D, std=0.1)
        w[e + "LayerNorm.bias"] = rnd(D, std=0.1)
        names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "up": "intermediate.dense",
                 "down": "output.dense", "ln2": "output.LayerNorm"}
        lp = kind + ".encoder.layer."
    for l in range(L):
        p = f"{lp}{l}."
        for m in ("q", "k", "v"):
            w[p + names[m] + ".weight"] = rnd(D, D, std=0.5)
            w[p + names[m] + ".bias"] = rnd(D, std=0.1)
        w[p + names["o"] + ".weight"] = rnd(D, D)
        w[p + names["o"] + ".bias"] = rnd(D, std=0.1)
        w[p + names["ln1"] + ".weight"] = 1 + rnd(D, std=0.1)
        w[p + names["ln1"] + ".bias"] = rnd(D, std=0.1)
        w[p + names["up"] + ".weight"] = rnd(F, D)
        w[p + names["up"] + ".bias"] = rnd(F, std=0.1)
        w[p + names["down"] + ".weight"] = rnd(D, F)
        w[p + names["down"] + ".bias"] = rnd(D, std=0.1)
        w[p + names["ln2"] + ".weight"] = 1 + rnd(D, std=0.1)
        w[p + names["ln2"] + ".bias"] = rnd(D, std=0.1)
    return w, e, lp, names


def bert_forward(W, e, lp, names, ids, types, pos_offset, D, H, L, eps, has_types):
    T = len(ids)
    x = W[e + "word_embeddings.weight"][ids] + W[e + "position_embeddings.weight"][pos_offset:pos_offset + T]
    if has_types:
        x = x + W[e + "token_type_embeddings.weight"][types]
    x = ln(x, W[e + "LayerNorm.weight"], W[e + "LayerNorm.bias"], eps)
    ref = {}
    Dh = D // H
    for l in range(L):
        p = f"{lp}{l}."
        lin = lambda n, t: t @ W[p + names[n] + ".weight"].T + W[p + names[n] + ".bias"]
        q, k, v = [lin(m, x).view(T, H, Dh).transpose(0, 1) for m in ("q", "k", "v")]
        o, att = attention(q, k, v, False)
        ref[f"attn.{l}"] = att
        a1 = ln(lin("o", o.transpose(0, 1).reshape(T, D)) + x, W[p + names["ln1"] + ".weight"], W[p + names["ln1"] + ".bias"], eps)
        h = lin("down", gelu_erf(lin("up", a1)))
        x = ln(h + a1, W[p + names["ln2"] + ".weight"], W[p + names["ln2"] + ".bias"], eps)
        ref[f"hidden.{l}"] = x
    ref["hidden"] = x
    return ref


def make_bert(name="bert-tiny", kind="bert", D=16, H=2, L=2, F=32, P=40):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + BERT_WORDS
    V = len(vocab)
    if kind == "distilbert":
        cfg = {"model_type": "distilbert", "architectures": ["DistilBertModel"], "vocab_size": V, "dim": D, "n_layers": L,
               "n_heads": H, "hidden_dim": F, "activation": "gelu", "max_position_embeddings": P,
               "sinusoidal_pos_embds": False, "pad_token_id": 0}
    else:
        cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": V, "hidden_size": D,
               "num_hidden_layers": L, "num_attention_heads": H, "intermediate_size": F, "hidden_act": "gelu",
               "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
               "position_embedding_type": "absolute", "pad_token_id": 0}
    w, e, lp, names = bert_weights(kind, V, D, H, L, F, P, 2)
    if kind == "bert":
        w["bert.pooler.dense.weight"] = rnd(D, D)   # ignored by the loader (pooler)
        w["bert.pooler.dense.bias"] = rnd(D)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    write_json(os.path.join(d, "config.json"), cfg)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    write_json(os.path.join(d, "tokenizer_config.json"), {"do_lower_case": True, "tokenize_chinese_chars": True,
                                                          "strip_accents": None, "model_max_length": P})

    text, pair = "The cat sat on the mat, unaffable!", "Hello dogs: café 日本?"
    vi = {t: i for i, t in enumerate(vocab)}
    a = [p for wd in bert_basic(text) for p in wordpiece(wd, vi)]
    b = [p for wd in bert_basic(pair) for p in wordpiece(wd, vi)]
    toks = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
    ids = [vi[t] for t in toks]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    W = {k: stored(v, "F32") for k, v in w.items()}
    ref = bert_forward(W, e, lp, names, ids, types, 0, D, H, L, 1e-12, kind == "bert")
    ref["ids"] = torch.tensor(ids, dtype=torch.float32)
    ref["type_ids"] = torch.tensor(types if kind == "bert" else [0] * len(ids), dtype=torch.float32)
    write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref,
                      metadata={"text": text, "pair": pair, "tokens": json.dumps(toks, ensure_ascii=False), "ids": json.dumps(ids)})


def make_roberta(name="roberta-tiny", D=16, H=2, L=2, F=32, P=42):
    """RoBERTa: BERT's layers, GPT-2's byte-level BPE, positions from padding_idx + 1 = 2, one token type."""
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    vocab, merges = gpt2_vocab()
    for t in ("<s>", "<pad>", "</s>"):
        vocab[t] = len(vocab)
    V = len(vocab)
    cfg = {"model_type": "roberta", "architectures": ["RobertaModel"], "vocab_size": V, "hidden_size": D,
           "num_hidden_layers": L, "num_attention_heads": H, "intermediate_size": F, "hidden_act": "gelu",
           "max_position_embeddings": P, "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": vocab["<pad>"],
           "bos_token_id": vocab["<s>"], "eos_token_id": vocab["</s>"], "position_embedding_type": "absolute"}
    # Positions start at pad_token_id + 1; the table must hold them.
    P = vocab["<pad>"] + 1 + 24
    cfg["max_position_embeddings"] = P
    w, e, lp, names = bert_weights("roberta", V, D, H, L, F, P, 1)
    w["lm_head.dense.weight"] = rnd(D, D)   # the masked-LM head: ignored by the loader
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "vocab.json"), vocab)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    text, pair = "the cat sat", "on the mat"
    ids = [vocab["<s>"]] + gpt2_encode(text, vocab, merges) + [vocab["</s>"], vocab["</s>"]] + gpt2_encode(pair, vocab, merges) + [vocab["</s>"]]
    W = {k: stored(v, "F32") for k, v in w.items()}
    ref = bert_forward(W, e, lp, names, ids, [0] * len(ids), vocab["<pad>"] + 1, D, H, L, 1e-5, True)
    ref["ids"] = torch.tensor(ids, dtype=torch.float32)
    ref["type_ids"] = torch.zeros(len(ids))
    write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref, metadata={"text": text, "pair": pair, "ids": json.dumps(ids)})


def write_ppm(path, img):
    """img: uint8 [H, W, 3] -> binary PPM (P6), which stb_image reads."""
    h, w, _ = img.shape
    with open(path, "wb") as f:
        f.write(f"P6\n{w} {h}\n255\n".encode())
        f.write(bytes(img.flatten().tolist()))


def make_vit(name="vit-tiny", S=16, p=4, D=16, H=2, L=2, F=32, labels=3):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    G = S // p
    P = G * G + 1
    cfg = {"model_type": "vit", "architectures": ["ViTForImageClassification"], "image_size": S, "patch_size": p,
           "num_channels": 3, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H, "intermediate_size": F,
           "hidden_act": "gelu", "layer_norm_eps": 1e-12, "qkv_bias": True,
           "id2label": {"0": "circle", "1": "square", "2": "stripe"}, "label2id": {"circle": 0, "square": 1, "stripe": 2}}
    pre = {"do_resize": True, "size": {"height": S, "width": S}, "resample": 2, "do_rescale": True,
           "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
           "image_processor_type": "ViTImageProcessor"}
    w = {"vit.embeddings.cls_token": rnd(1, 1, D), "vit.embeddings.position_embeddings": rnd(1, P, D),
         "vit.embeddings.patch_embeddings.projection.weight": rnd(D, 3, p, p, std=0.3),
         "vit.embeddings.patch_embeddings.projection.bias": rnd(D, std=0.1)}
    for l in range(L):
        q = f"vit.encoder.layer.{l}."
        w[q + "layernorm_before.weight"] = 1 + rnd(D, std=0.1)
        w[q + "layernorm_before.bias"] = rnd(D, std=0.1)
        for m in ("query", "key", "value"):
            w[q + f"attention.attention.{m}.weight"] = rnd(D, D, std=0.5)
            w[q + f"attention.attention.{m}.bias"] = rnd(D, std=0.1)
        w[q + "attention.output.dense.weight"] = rnd(D, D)
        w[q + "attention.output.dense.bias"] = rnd(D, std=0.1)
        w[q + "layernorm_after.weight"] = 1 + rnd(D, std=0.1)
        w[q + "layernorm_after.bias"] = rnd(D, std=0.1)
        w[q + "intermediate.dense.weight"] = rnd(F, D)
        w[q + "intermediate.dense.bias"] = rnd(F, std=0.1)
        w[q + "output.dense.weight"] = rnd(D, F)
        w[q + "output.dense.bias"] = rnd(D, std=0.1)
    w["vit.layernorm.weight"] = 1 + rnd(D, std=0.1)
    w["vit.layernorm.bias"] = rnd(D, std=0.1)
    w["classifier.weight"] = rnd(labels, D)
    w["classifier.bias"] = rnd(labels, std=0.1)
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "preprocessor_config.json"), pre)

    # An image at the model's size (the resize is the identity) and a larger one for the resize check.
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    img = torch.stack([(xx * 16) % 256, (yy * 16) % 256, ((xx - 8) ** 2 + (yy - 8) ** 2 < 20).long() * 200 + 30], -1).to(torch.uint8)
    write_ppm(os.path.join(OUT, name + ".ppm"), img.numpy())
    B = 24
    yy, xx = torch.meshgrid(torch.arange(B), torch.arange(B), indexing="ij")
    big = torch.stack([(xx * 11) % 256, (yy * 7 + xx * 3) % 256, ((xx - 12) ** 2 + (yy - 9) ** 2 < 40).long() * 220 + 20], -1).to(torch.uint8)
    write_ppm(os.path.join(OUT, name + "-24.ppm"), big.numpy())
    # PIL-style bilinear with antialiasing (torch's antialias=True follows PIL's filter), in 0..255.
    resized = torch.nn.functional.interpolate(big.permute(2, 0, 1)[None].to(F64), size=(S, S), mode="bilinear",
                                              antialias=True, align_corners=False)[0]

    W = {k: stored(v, "F32") for k, v in w.items()}
    mean = torch.tensor(pre["image_mean"], dtype=F64)[:, None, None]
    std = torch.tensor(pre["image_std"], dtype=F64)[:, None, None]
    px = (img.permute(2, 0, 1).to(F64) / 255 - mean) / std   # [3, S, S]
    patches = torch.nn.functional.conv2d(px[None], W["vit.embeddings.patch_embeddings.projection.weight"],
                                         W["vit.embeddings.patch_embeddings.projection.bias"], stride=p)[0]   # [D, G, G]
    x = torch.cat([W["vit.embeddings.cls_token"][0], patches.flatten(1).T], 0) + W["vit.embeddings.position_embeddings"][0]
    ref = {"pixels": px.flatten(), "resized": resized.flatten()}
    Dh = D // H
    T = P
    for l in range(L):
        q = f"vit.encoder.layer.{l}."
        lin = lambda n, t: t @ W[q + n + ".weight"].T + W[q + n + ".bias"]
        h = ln(x, W[q + "layernorm_before.weight"], W[q + "layernorm_before.bias"], 1e-12)
        qq, kk, vv = [lin(f"attention.attention.{m}", h).view(T, H, Dh).transpose(0, 1) for m in ("query", "key", "value")]
        o, att = attention(qq, kk, vv, False)
        ref[f"attn.{l}"] = att
        x = x + lin("attention.output.dense", o.transpose(0, 1).reshape(T, D))
        h = ln(x, W[q + "layernorm_after.weight"], W[q + "layernorm_after.bias"], 1e-12)
        x = x + lin("output.dense", gelu_erf(lin("intermediate.dense", h)))
        ref[f"hidden.{l}"] = x
    ref["hidden"] = x
    cls = ln(x[:1], W["vit.layernorm.weight"], W["vit.layernorm.bias"], 1e-12)
    ref["logits"] = cls @ W["classifier.weight"].T + W["classifier.bias"]
    write_safetensors(os.path.join(OUT, name + ".ref.safetensors"), ref, metadata={"image": name + ".ppm"})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_gpt2()
    make_llama("llama-tiny")
    make_llama("llama-tiny-bf16-sharded", tied=True, dtype="BF16", shards=2, rope_scaling={"type": "linear", "factor": 2.0},
               attention_bias=True)
    make_bert()
    make_bert("distilbert-tiny", kind="distilbert")
    make_roberta()
    make_vit()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)")
