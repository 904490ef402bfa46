#!/usr/bin/python3
"""Writes the reference LRP relevance (Chefer, Gur & Wolf 2021, CVPR, "Transformer Interpretability
Beyond Attention Visualization") of the tiny Hugging Face llamas in tests/data/hf/ into
tests/data/lm_lrp/reference.json, for test_lm_relevance's known-answer check of models/lm_relevance.

Run once with Debian's python3-torch:  /usr/bin/python3 scripts/make_lm_lrp_reference.py [OUT_DIR]

Independent of the C++ code: float64 PyTorch, its own llama forward (Hugging Face conventions:
rotate_half RoPE, repeat_interleave'd K/V for grouped-query attention, RMSNorm, SwiGLU), and every
rule in autograd "gradient x input" form, the rule functions of scripts/make_chefer_reference.py
(which checks the ViT) reused:
  - Linear (q/k/v/o, gate/up/down, LM head): alpha = 1, beta = 0 on signed inputs, bias ignored;
  - residual adds: gradient x input, normalised by eq. 8-9; A V and Q K^T: gradient x input, halved;
  - the SwiGLU product silu(g) * u: gradient x input of the product, halved; silu passes through;
  - RoPE: each 2x2 rotation of a (position, head, pair) by the w^2 rule (R_i = sum_j W_ij^2 R_j, the
    columns of W^2 summing to 1), written with the explicit 2x2 matrix;
  - RMSNorm and softmax pass relevance through; a copied tensor sums its copies' relevance.
Seed: relevance 1 on the logit of the explained token at the explained position (forward over the
prefix 0..position: causal). Then A_bar_l = mean over query heads of (dlogit/dA * R_A)^+ and
R = (I + A_bar_L) ... (I + A_bar_1); the stored row is R's last row (the explained position).

Fixtures: llama-tiny (GQA 4/2, untied head) and llama-tiny-bf16-sharded (Qwen2-style q/k/v biases,
tied output, linear RoPE scaling 2, BF16 weights). reference.json: per case the fixture, ids,
position, token, logit, every layer's R_A [H, n, n], the rollout row and the summed relevance
reaching the token embeddings.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_chefer_reference import (read_safetensors, relprop_add, relprop_linear, relprop_matmul,  # noqa: E402
                                   relprop_simple)

F64 = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
HF = os.path.join(HERE, "..", "tests", "data", "hf")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "lm_lrp")


def load(name):
    d = os.path.join(HF, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = {}
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    for fn in files:
        w.update(read_safetensors(os.path.join(d, fn)))
    return cfg, w


def rope_tables(cfg, T, Dh):
    scale = cfg["rope_scaling"]["factor"] if cfg.get("rope_scaling") else 1.0
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, Dh, 2, dtype=F64) / Dh))
    f = torch.outer(torch.arange(T, dtype=F64) / scale, inv)   # [T, Dh/2]
    return f.cos(), f.sin()


def rope(x, c, s):
    # x: [T, heads, Dh], rotate_half pairs (i, i + Dh/2): (a, b) -> (a c - b s, a s + b c)
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = c[:, None, :], s[:, None, :]
    return torch.cat([a * c - b * s, a * s + b * c], -1)


def relprop_rope(c, s, R):
    """Each (position, head, pair) rotation W = [[c, s], [-s, c]] ([in, out]) by the w^2 rule:
    R_i = sum_j W_ij^2 / sum_i' W_i'j^2 R_j."""
    T, heads, Dh = R.shape
    half = Dh // 2
    out = torch.zeros_like(R)
    for p in range(T):
        for h in range(heads):
            for i in range(half):
                W2 = torch.tensor([[c[p, i], s[p, i]], [-s[p, i], c[p, i]]], dtype=F64) ** 2
                ri = torch.stack([R[p, h, i], R[p, h, i + half]])
                r = W2 @ (ri / W2.sum(0))
                out[p, h, i], out[p, h, i + half] = r[0], r[1]
    return out


def rms(x, g, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g


def explain(cfg, w, ids, token):
    D, H, Hkv, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    Dh, eps, T = D // H, cfg["rms_norm_eps"], len(ids)
    group = H // Hkv
    c, s = rope_tables(cfg, T, Dh)
    head_w = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    bias = lambda n: w.get(n, torch.zeros(1, dtype=F64))  # noqa: E731
    # forward, keeping what the relevance pass reads
    x = w["model.embed_tokens.weight"][ids].clone().requires_grad_(True)   # so that the graph (and A.grad) exists
    trace = []
    for l in range(L):
        p = f"model.layers.{l}."
        t = {"x": x}
        t["n1"] = rms(x, w[p + "input_layernorm.weight"], eps)
        t["qp"] = (t["n1"] @ w[p + "self_attn.q_proj.weight"].T + bias(p + "self_attn.q_proj.bias")).view(T, H, Dh)
        t["kp"] = (t["n1"] @ w[p + "self_attn.k_proj.weight"].T + bias(p + "self_attn.k_proj.bias")).view(T, Hkv, Dh)
        v = (t["n1"] @ w[p + "self_attn.v_proj.weight"].T + bias(p + "self_attn.v_proj.bias")).view(T, Hkv, Dh)
        q, k = rope(t["qp"], c, s), rope(t["kp"], c, s)
        t["q"] = [q[:, h] for h in range(H)]
        t["k"] = [k[:, g] for g in range(Hkv)]
        t["v"] = [v[:, g] for g in range(Hkv)]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        t["A"] = [torch.softmax((t["q"][h] @ t["k"][h // group].T / math.sqrt(Dh)).masked_fill(mask, -math.inf), -1)
                  for h in range(H)]
        for a in t["A"]:
            a.retain_grad()
        t["ctx"] = torch.cat([t["A"][h] @ t["v"][h // group] for h in range(H)], 1)
        t["o"] = t["ctx"] @ w[p + "self_attn.o_proj.weight"].T
        t["h"] = x + t["o"]
        t["n2"] = rms(t["h"], w[p + "post_attention_layernorm.weight"], eps)
        g = t["n2"] @ w[p + "mlp.gate_proj.weight"].T
        t["silu"] = g * torch.sigmoid(g)
        t["u"] = t["n2"] @ w[p + "mlp.up_proj.weight"].T
        t["act"] = t["silu"] * t["u"]
        t["f"] = t["act"] @ w[p + "mlp.down_proj.weight"].T
        x = t["h"] + t["f"]
        trace.append(t)
    z = rms(x[T - 1:T], w["model.norm.weight"], eps)
    logit = (z @ head_w.T)[0, token]
    logit.backward()
    grads = [torch.stack([a.grad for a in t["A"]]) for t in trace]
    # relevance, gradient x input
    det = lambda m: m.detach()  # noqa: E731
    R = torch.zeros(1, head_w.shape[0], dtype=F64)
    R[0, token] = 1
    r = torch.zeros(T, D, dtype=F64)
    r[T - 1:T] = relprop_linear(det(z), head_w.T, R)   # the final RMSNorm passes it through
    maps = [None] * L
    for l in reversed(range(L)):
        t, p = trace[l], f"model.layers.{l}."
        r_h, r_f = relprop_add(det(t["h"]), det(t["f"]), r)
        r_act = relprop_linear(det(t["act"]), w[p + "mlp.down_proj.weight"].T, r_f)
        r_silu, r_u = (m / 2 for m in relprop_simple(lambda a, b: a * b, [det(t["silu"]), det(t["u"])], r_act))
        r_n2 = (relprop_linear(det(t["n2"]), w[p + "mlp.gate_proj.weight"].T, r_silu) +   # silu passes through
                relprop_linear(det(t["n2"]), w[p + "mlp.up_proj.weight"].T, r_u))
        r_h = r_h + r_n2                                                                   # RMSNorm passes through
        r_x, r_o = relprop_add(det(t["x"]), det(t["o"]), r_h)
        r_ctx = relprop_linear(det(t["ctx"]), w[p + "self_attn.o_proj.weight"].T, r_o)
        rq = torch.zeros(T, H, Dh, dtype=F64)
        rk = torch.zeros(T, Hkv, Dh, dtype=F64)
        rv = torch.zeros(T, Hkv, Dh, dtype=F64)
        rA = []
        for h in range(H):
            g = h // group
            ra, rvh = relprop_matmul(det(t["A"][h]), det(t["v"][g]), r_ctx[:, h * Dh:(h + 1) * Dh])
            rA.append(ra)
            rqh, rkt = relprop_matmul(det(t["q"][h]), det(t["k"][g]).T, ra)   # softmax passes through
            rq[:, h] = rqh
            rk[:, g] += rkt.T
            rv[:, g] += rvh
        maps[l] = torch.stack(rA)
        rqp = relprop_rope(c, s, rq).reshape(T, H * Dh)
        rkp = relprop_rope(c, s, rk).reshape(T, Hkv * Dh)
        r_n1 = (relprop_linear(det(t["n1"]), w[p + "self_attn.q_proj.weight"].T, rqp) +
                relprop_linear(det(t["n1"]), w[p + "self_attn.k_proj.weight"].T, rkp) +
                relprop_linear(det(t["n1"]), w[p + "self_attn.v_proj.weight"].T, rv.reshape(T, Hkv * Dh)))
        r = r_x + r_n1                                                                     # RMSNorm passes through
    roll = torch.eye(T, dtype=F64)
    for l in range(L):
        abar = (grads[l] * maps[l]).clamp(min=0).mean(0)
        roll = (torch.eye(T, dtype=F64) + abar) @ roll
    return float(logit), maps, roll[T - 1], float(r.sum())


def main():
    os.makedirs(OUT, exist_ok=True)
    ids = [1, 40, 77, 3, 120, 58, 201, 9, 33]
    cases = []
    for fixture in ("llama-tiny", "llama-tiny-bf16-sharded"):
        cfg, w = load(fixture)
        for position, token in ((8, 17), (5, ids[6])):
            logit, maps, row, rin = explain(cfg, w, ids[:position + 1], token)
            cases.append({"fixture": fixture, "ids": ids, "position": position, "token": token, "logit": logit,
                          "lrp_maps": [m.tolist() for m in maps], "lrp_relevance": row.tolist(),
                          "input_relevance_sum": rin})
            print(f"{fixture} position {position} token {token}: logit {logit:.6f}, input relevance {rin:.9f}, "
                  f"row {[round(v, 4) for v in row.tolist()]}")
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"note": "written by scripts/make_lm_lrp_reference.py (float64 PyTorch); do not edit",
                   "cases": cases}, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
