#!/usr/bin/python3
"""Writes a tiny MNIST-style ViT with random weights (attnviz's model file layout) and the reference
transformer attribution of Chefer, Gur & Wolf (2021) for it into tests/data/chefer/, for
test_relevance's known-answer check.

Run once with Debian's python3-torch:  /usr/bin/python3 scripts/make_chefer_reference.py [OUT_DIR]

Independent of the C++ code: float64 PyTorch, and every LRP rule written as the paper states it,
R_in = x * d/dx(Z) . (R / Z) evaluated with autograd (the "gradient x input" form), where the C++
writes the same rules as closed-form matrix products:
  - Linear, alpha = 1, beta = 0 on signed inputs: Z = x+ W+ + x- W- (bias ignored);
  - residual adds and the two matrix products of attention: R_u = u * grad(Z, u, R / Z), then
    adds normalised by eq. 8-9 (shares |sum R_u| / (|sum R_u| + |sum R_v|) of sum R), products
    halved; LayerNorm, GELU and softmax pass relevance through; a copied tensor sums the relevance
    of its copies.
Then A_bar = mean_h (dlogit/dA * R_A)^+ per layer, C = prod_l (I + A_bar_l) (last layer on the left),
and the map is C's CLS row.

Files: tiny_vit.safetensors (image 8x8, patch 2 -> 16 patches + CLS, D 8, 2 heads, depth 2,
MLP 16, 4 classes; random non-zero biases and LayerNorm parameters) and reference.json (images,
and for each (image, explained class): logits, the map's CLS row over all 17 tokens, each layer's
relevance CLS rows [H, T], the summed relevance reaching the token embeddings, and for the first
case each layer's whole relevance [H, T, T]).
"""
import json
import math
import os
import struct
import sys

import torch

F64 = torch.float64
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "chefer")
IMAGE, PATCH, D, H, DEPTH, MLP, CLASSES = 8, 2, 8, 2, 2, 16, 4
GRID = IMAGE // PATCH
P = GRID * GRID
T = P + 1
DH = D // H
gen = torch.Generator().manual_seed(2021)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=gen, dtype=F64) * scale


# ----------------------------------------------------------------------------------- parameters
# attnviz layout: Linear weight [in, out], bias [1, out]; LayerNorm weight/bias [1, D].
params = {
    "embed.proj.weight": randn(PATCH * PATCH, D, scale=0.8),
    "embed.proj.bias": randn(1, D, scale=0.1),
    "embed.cls": randn(1, D, scale=0.5),
    "embed.pos": randn(T, D, scale=0.3),
    "norm.weight": 1 + randn(1, D, scale=0.1),
    "norm.bias": randn(1, D, scale=0.1),
    "head.weight": randn(D, CLASSES, scale=0.6),
    "head.bias": randn(1, CLASSES, scale=0.1),
}
for l in range(DEPTH):
    p = f"vit.layer{l}."
    for ln in ("ln1", "ln2"):
        params[p + ln + ".weight"] = 1 + randn(1, D, scale=0.1)
        params[p + ln + ".bias"] = randn(1, D, scale=0.1)
    for w in ("wq", "wk", "wv", "wo"):
        params[p + "attn." + w + ".weight"] = randn(D, D, scale=0.6)
        params[p + "attn." + w + ".bias"] = randn(1, D, scale=0.1)
    params[p + "fc1.weight"] = randn(D, MLP, scale=0.5)
    params[p + "fc1.bias"] = randn(1, MLP, scale=0.1)
    params[p + "fc2.weight"] = randn(MLP, D, scale=0.4)
    params[p + "fc2.bias"] = randn(1, D, scale=0.1)
# Round to float32 once: the C++ model holds exactly these values.
params = {k: v.float().double() for k, v in params.items()}


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        raw = tensors[name].float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# -------------------------------------------------------------------------------------- forward
def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def linear(x, name, m=None):
    ps = m["params"] if m else params
    return x @ ps[name + ".weight"] + ps[name + ".bias"]


def patches(img):  # [IMAGE*IMAGE] -> [P, PATCH*PATCH], row-major patches, row-major pixels inside
    im = img.reshape(IMAGE, IMAGE)
    rows = []
    for pr in range(GRID):
        for pc in range(GRID):
            rows.append(im[pr * PATCH:(pr + 1) * PATCH, pc * PATCH:(pc + 1) * PATCH].reshape(-1))
    return torch.stack(rows)


def mnist_embed(img):
    return torch.cat([params["embed.cls"], linear(patches(img), "embed.proj")]) + params["embed.pos"]   # [T, D]


# The model a forward / relevance pass runs: its parameters (attnviz's MNIST ViT names and layout),
# sizes, LayerNorm epsilon and embedding (pixels -> [T, D]).
MNIST = {"params": params, "D": D, "H": H, "depth": DEPTH, "T": T, "classes": CLASSES, "eps": 1e-5, "embed": mnist_embed}


def forward(img, m=MNIST):
    """Returns logits and a trace of every intermediate the relevance pass needs."""
    ps, H_, DH_, eps = m["params"], m["H"], m["D"] // m["H"], m["eps"]
    img = img.clone().requires_grad_(True)   # so that the graph (and A.grad) exists
    x = m["embed"](img)
    trace = []
    for l in range(m["depth"]):
        p = f"vit.layer{l}."
        t = {"x": x}
        t["n1"] = layer_norm(x, ps[p + "ln1.weight"], ps[p + "ln1.bias"], eps)
        q, k, v = (linear(t["n1"], p + "attn." + w, m) for w in ("wq", "wk", "wv"))
        t["q"] = [q[:, h * DH_:(h + 1) * DH_] for h in range(H_)]
        t["k"] = [k[:, h * DH_:(h + 1) * DH_] for h in range(H_)]
        t["v"] = [v[:, h * DH_:(h + 1) * DH_] for h in range(H_)]
        t["A"] = [torch.softmax(t["q"][h] @ t["k"][h].T / math.sqrt(DH_), -1) for h in range(H_)]
        for a in t["A"]:
            a.retain_grad()   # backward from a logit leaves d(logit)/dA in A.grad
        t["ctx"] = torch.cat([t["A"][h] @ t["v"][h] for h in range(H_)], 1)
        t["a"] = linear(t["ctx"], p + "attn.wo", m)
        t["h"] = x + t["a"]
        t["n2"] = layer_norm(t["h"], ps[p + "ln2.weight"], ps[p + "ln2.bias"], eps)
        t["g"] = gelu(linear(t["n2"], p + "fc1", m))
        t["f"] = linear(t["g"], p + "fc2", m)
        x = t["h"] + t["f"]
        trace.append(t)
    z = layer_norm(x[0:1], ps["norm.weight"], ps["norm.bias"], eps)
    return linear(z, "head", m)[0], trace, z


# ------------------------------------------------------------------- relevance (gradient x input)
def safe_div(r, z):
    return torch.where(z == 0, torch.zeros_like(r), r / torch.where(z == 0, torch.ones_like(z), z))


def relprop_simple(f, inputs, R):
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    Z = f(*xs)
    grads = torch.autograd.grad(Z, xs, safe_div(R, Z.detach()))
    return [x.detach() * g for x, g in zip(xs, grads)]


ABSORBED = [0.0]   # relevance the Linear layers drop (outputs with no positive contribution), summed


def relprop_linear(x, W, R):
    xp = x.detach().clamp(min=0).requires_grad_(True)
    xn = x.detach().clamp(max=0).requires_grad_(True)
    Wp, Wn = W.clamp(min=0), W.clamp(max=0)
    Z1, Z2 = xp @ Wp, xn @ Wn
    S = safe_div(R, (Z1 + Z2).detach())
    g1, = torch.autograd.grad(Z1, xp, S)
    g2, = torch.autograd.grad(Z2, xn, S)
    r = xp.detach() * g1 + xn.detach() * g2
    ABSORBED[0] += float(R.sum() - r.sum())
    return r


def relprop_add(a, b, R):
    ra, rb = relprop_simple(lambda u, v: u + v, [a, b], R)
    sa, sb, sr = ra.sum(), rb.sum(), R.sum()
    fa = sa.abs() / (sa.abs() + sb.abs()) * sr
    fb = sb.abs() / (sa.abs() + sb.abs()) * sr
    return ra * fa / sa, rb * fb / sb


def relprop_matmul(x, y, R):
    rx, ry = relprop_simple(lambda u, v: u @ v, [x, y], R)
    return rx / 2, ry / 2


def relevance(trace, z, target, m=MNIST):
    params, H, DH, depth = m["params"], m["H"], m["D"] // m["H"], m["depth"]
    R = torch.zeros(1, m["classes"], dtype=F64)
    R[0, target] = 1
    rz = relprop_linear(z, params["head.weight"], R)   # final LN passes it on to the CLS row
    r = torch.zeros(m["T"], m["D"], dtype=F64)
    r[0:1] = rz
    per_layer = [None] * depth
    for l in reversed(range(depth)):
        t, p = trace[l], f"vit.layer{l}."
        r_h1, r_f = relprop_add(t["h"], t["f"], r)
        r_g = relprop_linear(t["g"], params[p + "fc2.weight"], r_f)
        r_n2 = relprop_linear(t["n2"], params[p + "fc1.weight"], r_g)   # GELU passes through
        r_h = r_h1 + r_n2                                                  # LN2 passes through; copy sums
        r_x1, r_a = relprop_add(t["x"], t["a"], r_h)
        r_ctx = relprop_linear(t["ctx"], params[p + "attn.wo.weight"], r_a)
        rq, rk, rv, rA = [], [], [], []
        for h in range(H):
            ra, rvh = relprop_matmul(t["A"][h], t["v"][h], r_ctx[:, h * DH:(h + 1) * DH])
            rA.append(ra)
            rqh, rkt = relprop_matmul(t["q"][h], t["k"][h].T, ra)      # softmax passes through
            rq.append(rqh)
            rk.append(rkt.T)
            rv.append(rvh)
        per_layer[l] = torch.stack(rA)                                      # [H, T, T]
        r_n1 = (relprop_linear(t["n1"], params[p + "attn.wq.weight"], torch.cat(rq, 1)) +
                relprop_linear(t["n1"], params[p + "attn.wk.weight"], torch.cat(rk, 1)) +
                relprop_linear(t["n1"], params[p + "attn.wv.weight"], torch.cat(rv, 1)))
        r = r_x1 + r_n1                                                     # LN1 passes through
    return per_layer, r


def chefer_map(trace, per_layer, m=MNIST):
    T_ = m["T"]
    c = torch.eye(T_, dtype=F64)
    for l in range(m["depth"]):
        grad = torch.stack([a.grad for a in trace[l]["A"]])                # [H, T, T]
        abar = (grad * per_layer[l]).clamp(min=0).mean(0)
        c = (torch.eye(T_, dtype=F64) + abar) @ c
    return c[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    config = {"arch": "vit", "classes": CLASSES, "depth": DEPTH, "dim": D, "heads": H, "image": IMAGE,
              "mlp": MLP, "patch": PATCH}
    write_safetensors(os.path.join(OUT, "tiny_vit.safetensors"), params,
                      {"attnviz.model": "mnist", "attnviz.config": json.dumps(config, separators=(",", ":"))})
    images = []
    for i in range(2):
        img = torch.rand(IMAGE * IMAGE, generator=gen, dtype=F64)
        img[torch.rand(IMAGE * IMAGE, generator=gen, dtype=F64) < 0.4] = 0
        images.append(img.float().double())
    cases = []
    for i, img in enumerate(images):
        logits, _, _ = forward(img)
        pred = int(logits.argmax())
        for target in (pred, (pred + 1) % CLASSES):
            logits, trace, z = forward(img)
            logits[target].backward()
            per_layer, r_in = relevance(trace, z.detach(), target)
            case = {"image": i, "target": target, "predicted": pred, "logits": logits.detach().tolist(),
                    "chefer": chefer_map(trace, per_layer).tolist(),
                    "relevance_cls": [pl[:, 0, :].tolist() for pl in per_layer],
                    "input_relevance_sum": float(r_in.sum())}
            if not cases:
                case["relevance"] = [pl.tolist() for pl in per_layer]
            cases.append(case)
    ref = {"note": "written by scripts/make_chefer_reference.py (float64 PyTorch); do not edit",
           "images": [img.tolist() for img in images], "cases": cases}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=0)
        f.write("\n")
    for c in cases:
        print(f"image {c['image']} target {c['target']} (pred {c['predicted']}): input relevance sum "
              f"{c['input_relevance_sum']:.12f}, chefer CLS row max {max(c['chefer'][1:]):.6f}")


# --------------------------------------------------------- the tiny Hugging Face ViT (test_hf fixture)
HF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "hf")


def read_safetensors(path):
    """F32 and BF16 tensors of a safetensors file as float64 (the values the file holds)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        raw = data[info["data_offsets"][0]:info["data_offsets"][1]]
        if info["dtype"] == "F32":
            t = torch.frombuffer(bytearray(raw), dtype=torch.float32)
        elif info["dtype"] == "BF16":
            t = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16).float()
        else:
            raise ValueError(f"{path}: {name}: dtype {info['dtype']} not handled")
        out[name] = t.reshape(info["shape"]).double()
    return out


def hf_vit_model():
    """tests/data/hf/vit-tiny (ViTForImageClassification: pre-LN, LayerNorm eps from config.json, GELU erf,
    classifier on the final LayerNorm's CLS row) in this script's layout: Linear weights [in, out]."""
    with open(os.path.join(HF_DIR, "vit-tiny", "config.json")) as f:
        cfg = json.load(f)
    assert cfg["hidden_act"] == "gelu" and cfg.get("qkv_bias", True)
    w = read_safetensors(os.path.join(HF_DIR, "vit-tiny", "model.safetensors"))
    D_, H_, L_ = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    S, p, C = cfg["image_size"], cfg["patch_size"], cfg.get("num_channels", 3)
    T_ = (S // p) ** 2 + 1
    ps = {}

    def lin(ours, theirs):
        ps[ours + ".weight"] = w[theirs + ".weight"].T   # PyTorch [out, in] -> [in, out]
        ps[ours + ".bias"] = w[theirs + ".bias"][None]

    def norm(ours, theirs):
        ps[ours + ".weight"] = w[theirs + ".weight"][None]
        ps[ours + ".bias"] = w[theirs + ".bias"][None]

    for l in range(L_):
        q, o = f"vit.encoder.layer.{l}.", f"vit.layer{l}."
        norm(o + "ln1", q + "layernorm_before")
        norm(o + "ln2", q + "layernorm_after")
        for ours, theirs in (("wq", "query"), ("wk", "key"), ("wv", "value")):
            lin(o + "attn." + ours, q + "attention.attention." + theirs)
        lin(o + "attn.wo", q + "attention.output.dense")
        lin(o + "fc1", q + "intermediate.dense")
        lin(o + "fc2", q + "output.dense")
    norm("norm", "vit.layernorm")
    lin("head", "classifier")

    def embed(px):   # [C*S*S] normalized pixels -> [T, D]: CLS, the stride-p convolution, positions
        conv = torch.nn.functional.conv2d(px.reshape(1, C, S, S), w["vit.embeddings.patch_embeddings.projection.weight"],
                                          w["vit.embeddings.patch_embeddings.projection.bias"], stride=p)[0]
        return torch.cat([w["vit.embeddings.cls_token"][0], conv.flatten(1).T]) + w["vit.embeddings.position_embeddings"][0]

    return {"params": ps, "D": D_, "H": H_, "depth": L_, "T": T_, "classes": ps["head.weight"].shape[1],
            "eps": cfg["layer_norm_eps"], "embed": embed, "pixels": C * S * S}


def main_hf():
    """hf_vit_reference.json: the fixture image's normalized pixels (tests/data/hf/vit-tiny.ref.safetensors
    "pixels") and a random one; per (image, explained class) the logits, the map's CLS row, each layer's
    relevance CLS rows, the relevance reaching the token embeddings and what the Linear layers
    absorbed; for the first case each layer's whole relevance and d(logit)/dA [H, T, T]."""
    m = hf_vit_model()
    g = torch.Generator().manual_seed(224)
    images = [read_safetensors(os.path.join(HF_DIR, "vit-tiny.ref.safetensors"))["pixels"],
              (torch.randn(m["pixels"], generator=g, dtype=F64) * 1.5).float().double()]
    cases = []
    for i, img in enumerate(images):
        logits, _, _ = forward(img, m)
        pred = int(logits.argmax())
        for target in (pred, (pred + 1) % m["classes"]):
            logits, trace, z = forward(img, m)
            logits[target].backward()
            ABSORBED[0] = 0.0
            per_layer, r_in = relevance(trace, z.detach(), target, m)
            assert abs(float(r_in.sum()) + ABSORBED[0] - 1) < 1e-9
            case = {"image": i, "target": target, "predicted": pred, "logits": logits.detach().tolist(),
                    "chefer": chefer_map(trace, per_layer, m).tolist(),
                    "relevance_cls": [pl[:, 0, :].tolist() for pl in per_layer],
                    "input_relevance_sum": float(r_in.sum()), "absorbed": ABSORBED[0]}
            if not cases:
                case["relevance"] = [pl.tolist() for pl in per_layer]
                case["gradients"] = [torch.stack([a.grad for a in t["A"]]).tolist() for t in trace]
            cases.append(case)
    ref = {"note": "written by scripts/make_chefer_reference.py (float64 PyTorch) from tests/data/hf/vit-tiny; do not edit",
           "images": [img.tolist() for img in images], "cases": cases}
    with open(os.path.join(OUT, "hf_vit_reference.json"), "w") as f:
        json.dump(ref, f, indent=0)
        f.write("\n")
    for c in cases:
        print(f"hf vit: image {c['image']} target {c['target']} (pred {c['predicted']}): input relevance sum "
              f"{c['input_relevance_sum']:.12f} + absorbed {c['absorbed']:.12f}, chefer CLS row max {max(c['chefer'][1:]):.6f}")


if __name__ == "__main__":
    main()
    main_hf()
