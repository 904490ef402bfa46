// Backward pass of the decoder LMs (llama: RMSNorm, RoPE, grouped-query attention, SwiGLU; gpt2:
// LayerNorm, learned positions, tanh-GELU) over a whole sequence, for the logit of one token at one
// position: the gradient of every attention map and the grad-rollout relevance of the earlier tokens;
// beside it the LRP relevance of every map (engine/relevance.hpp's rules) and its Chefer rollout.
// Written for float and double (the tests' finite differences); independent of the KV-cache forward.
#include <attnviz/models/lm_relevance.hpp>

#include <attnviz/engine/lm_ops.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/relevance.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace attnviz::models {

namespace {

template <class S>
using MatS = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using RowS = Eigen::Matrix<S, 1, Eigen::Dynamic>;

// A weight as S: the model's own float matrix, or a converted copy for double.
template <class S>
struct WeightS {
  MatS<S> own;
  const MatS<S>* p = nullptr;
  void set(const Mat* m) {
    if (!m) return;
    if constexpr (std::is_same_v<S, float>) {
      p = m;
    } else {
      own = m->cast<S>();
      p = &own;
    }
  }
  const MatS<S>& operator*() const { return *p; }
  explicit operator bool() const { return p != nullptr; }
};

template <class S>
class LmBackward {
 public:
  LmBackward(const LmModel& m, const std::vector<int>& ids, const LmAttentionPerturbation* perturb, bool lrp)
      : cfg_(m.config()), T_(static_cast<int>(ids.size())), lrp_(lrp) {
    const LmConfig& c = cfg_;
    llama_ = c.arch == LmArch::Llama;
    const int L = c.layers;
    layers_.resize(L);
    for (int l = 0; l < L; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      auto opt = [&](const std::string& n) -> const Mat* {
        const nn::Param* p = m.params().find(n);
        return p ? &p->value : nullptr;
      };
      W& w = layers_[l].w;
      w.n1.set(opt(b + "attn_norm.weight"));
      w.n1b.set(opt(b + "attn_norm.bias"));
      w.q.set(opt(b + "attn_q.weight"));
      w.k.set(opt(b + "attn_k.weight"));
      w.v.set(opt(b + "attn_v.weight"));
      w.bq.set(opt(b + "attn_q.bias"));
      w.bk.set(opt(b + "attn_k.bias"));
      w.bv.set(opt(b + "attn_v.bias"));
      w.qkv.set(opt(b + "attn_qkv.weight"));
      w.bqkv.set(opt(b + "attn_qkv.bias"));
      w.o.set(opt(b + "attn_output.weight"));
      w.bo.set(opt(b + "attn_output.bias"));
      w.n2.set(opt(b + "ffn_norm.weight"));
      w.n2b.set(opt(b + "ffn_norm.bias"));
      w.gate.set(opt(b + "ffn_gate.weight"));
      w.up.set(opt(b + "ffn_up.weight"));
      w.bup.set(opt(b + "ffn_up.bias"));
      w.down.set(opt(b + "ffn_down.weight"));
      w.bdown.set(opt(b + "ffn_down.bias"));
    }
    nf_.set(&m.weight("output_norm.weight"));
    if (c.arch == LmArch::Gpt2) nfb_.set(&m.weight("output_norm.bias"));
    out_.set(c.tied_output ? &m.weight("token_embd.weight") : &m.weight("output.weight"));
    if (llama_) rope_table();
    forward(m, ids, perturb);
  }

  double logit(const LmExplainTarget& t) const {
    return static_cast<double>(xnf_.row(t.position).dot((*out_).row(t.token)));
  }

  // One backward from logit(target) over rows 0..position.
  void explain(const LmExplainTarget& tg, bool keep, LmExplanation& e) const {
    using M = MatS<S>;
    const LmConfig& c = cfg_;
    const int n = tg.position + 1, D = c.dim, H = c.heads, Hkv = c.kv_heads, Dh = c.head_dim;
    const int group = H / Hkv, QW = H * Dh, KV = Hkv * Dh;
    const S scale = S(1) / std::sqrt(static_cast<S>(Dh));
    e.target = tg;
    e.logit = logit(tg);
    if (keep) e.gradients.assign(c.layers, std::vector<double>(static_cast<size_t>(H) * n * n, 0.0));
    if (keep && lrp_) e.lrp_maps.assign(c.layers, std::vector<double>(static_cast<size_t>(H) * n * n, 0.0));

    // d logit / d x_L: only row `position` is non-zero.
    MatS<S> gx = MatS<S>::Zero(n, D);
    {
      MatS<S> gy = (*out_).row(tg.token);
      MatS<S> gxr(1, D);
      norm_backward(final_, tg.position, gy, *nf_, gxr);
      gx.row(tg.position) = gxr;
    }
    RowS<S> v = RowS<S>::Zero(n);   // grad-rollout row, from the top layer down
    v(tg.position) = 1;
    RowS<S> vl = v;                 // the LRP rollout's row
    // LRP: relevance 1 on the explained logit; the LM head (a Linear without bias) restricted to
    // that column, the final norm passing it through to row `position` of the residual stream.
    M R;
    double absorbed = 0;
    if (lrp_) {
      R = M::Zero(n, D);
      R.row(tg.position) = nn::lrp_linear<S>(M(xnf_.row(tg.position)), M((*out_).row(tg.token).transpose()),
                                             M::Constant(1, 1, S(1)), &absorbed);
    }
    std::vector<M> RA;
    MatS<S> gh, ga, gu, gxn, gatt, gq, gk, gv, gA(n, n), gS(n, n), Abar(n, n), Abar_lrp(n, n), tmp;
    for (int l = c.layers - 1; l >= 0; --l) {
      const Acts& a = acts_[l];
      const W& w = layers_[l].w;
      if (lrp_) lrp_layer(l, n, R, RA, absorbed);
      Abar_lrp.setZero();
      // MLP: x_out = x_mid + act Wd^T (+ bd)
      gh.noalias() = gx * *w.down;   // [n, F]
      if (llama_) {
        // act = silu(a) * u
        const auto A = a.a.topRows(n).array();
        const auto sg = (S(1) / (S(1) + (-A).exp())).eval();
        gu = (gh.array() * A * sg).matrix();
        ga = (gh.array() * a.u.topRows(n).array() * sg * (S(1) + A * (S(1) - sg))).matrix();
        gxn.noalias() = ga * *w.gate;
        gxn.noalias() += gu * *w.up;
      } else {
        // act = gelu_tanh(a)
        const S k = static_cast<S>(0.7978845608028654), cc = static_cast<S>(0.044715);
        const auto A = a.a.topRows(n).array();
        const auto th = (k * (A + cc * A.cube())).tanh().eval();
        ga = (gh.array() * (S(0.5) * (S(1) + th) + S(0.5) * A * (S(1) - th.square()) * k * (S(1) + S(3) * cc * A.square())))
                 .matrix();
        gxn.noalias() = ga * *w.up;
      }
      tmp.resize(n, D);
      for (int r = 0; r < n; ++r) {
        MatS<S> gr(1, D);
        norm_backward(a.norm2, r, gxn.row(r), *w.n2, gr);
        tmp.row(r) = gr;
      }
      gx += tmp;   // now d/d x_mid
      // attention: x_mid = x_in + att Wo^T (+ bo)
      gatt.noalias() = gx * *w.o;   // [n, QW]
      gq = MatS<S>::Zero(n, QW);
      gk = MatS<S>::Zero(n, KV);
      gv = MatS<S>::Zero(n, KV);
      Abar.setZero();
      for (int h = 0; h < H; ++h) {
        const int g = h / group;
        const MatS<S>& Ah = a.A[h];
        auto Ahn = Ah.topLeftCorner(n, n);
        auto gO = gatt.middleCols(static_cast<Eigen::Index>(h) * Dh, Dh);
        auto Vg = a.v.topRows(n).middleCols(static_cast<Eigen::Index>(g) * Dh, Dh);
        gA.noalias() = gO * Vg.transpose();
        for (int i = 0; i < n; ++i)
          for (int j = i + 1; j < n; ++j) gA(i, j) = 0;   // causal: no such weight
        if (keep) {
          double* dst = e.gradients[l].data() + static_cast<size_t>(h) * n * n;
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) dst[static_cast<size_t>(i) * n + j] = static_cast<double>(gA(i, j));
        }
        Abar += (gA.array() * Ahn.array()).max(S(0)).matrix();
        if (lrp_) {
          Abar_lrp += (gA.array() * RA[h].array()).max(S(0)).matrix();
          if (keep) {
            double* dst = e.lrp_maps[l].data() + static_cast<size_t>(h) * n * n;
            for (int i = 0; i < n; ++i)
              for (int j = 0; j < n; ++j) dst[static_cast<size_t>(i) * n + j] = static_cast<double>(RA[h](i, j));
          }
        }
        gv.middleCols(static_cast<Eigen::Index>(g) * Dh, Dh).noalias() += Ahn.transpose() * gO;
        // softmax: dS = A ⊙ (dA - rowsum(dA ⊙ A))
        const auto rs = (gA.array() * Ahn.array()).rowwise().sum().eval();
        gS = (Ahn.array() * (gA.array().colwise() - rs)).matrix();
        gS *= scale;
        auto Qh = a.q.topRows(n).middleCols(static_cast<Eigen::Index>(h) * Dh, Dh);
        auto Kg = a.k.topRows(n).middleCols(static_cast<Eigen::Index>(g) * Dh, Dh);
        gq.middleCols(static_cast<Eigen::Index>(h) * Dh, Dh).noalias() = gS * Kg;
        gk.middleCols(static_cast<Eigen::Index>(g) * Dh, Dh).noalias() += gS.transpose() * Qh;
      }
      Abar /= static_cast<S>(H);
      v += v * Abar;
      if (lrp_) {
        Abar_lrp /= static_cast<S>(H);
        vl += vl * Abar_lrp;
      }
      if (llama_) {
        rope_backward(gq, H);
        rope_backward(gk, Hkv);
        gxn.noalias() = gq * *w.q;
        gxn.noalias() += gk * *w.k;
        gxn.noalias() += gv * *w.v;
      } else {
        gxn.noalias() = gq * (*w.qkv).topRows(D);
        gxn.noalias() += gk * (*w.qkv).middleRows(D, D);
        gxn.noalias() += gv * (*w.qkv).bottomRows(D);
      }
      for (int r = 0; r < n; ++r) {
        MatS<S> gr(1, D);
        norm_backward(a.norm1, r, gxn.row(r), *w.n1, gr);
        tmp.row(r) = gr;
      }
      gx += tmp;   // d/d x_in = d/d previous block's output
    }
    e.relevance.resize(n);
    for (int j = 0; j < n; ++j) e.relevance[j] = static_cast<double>(v(j));
    if (lrp_) {
      e.lrp_relevance.resize(n);
      e.lrp_input.resize(n);
      for (int j = 0; j < n; ++j) {
        e.lrp_relevance[j] = static_cast<double>(vl(j));
        e.lrp_input[j] = R.row(j).template cast<double>().sum();
      }
      e.lrp_absorbed = absorbed;
    }
  }

 private:
  struct W {
    WeightS<S> n1, n1b, q, k, v, bq, bk, bv, qkv, bqkv, o, bo, n2, n2b, gate, up, bup, down, bdown;
  };
  // What a norm's backward needs: the normalised rows and 1/sigma per row.
  struct NormCache {
    MatS<S> xhat;
    std::vector<S> inv;
  };
  struct Acts {
    NormCache norm1, norm2;
    MatS<S> q, k, v;          // after RoPE; [T, QW], [T, KV], [T, KV]
    std::vector<MatS<S>> A;   // per head [T, T], zero above the diagonal
    MatS<S> a, u;             // MLP pre-activations: llama gate (a) and up (u); gpt2 up + bias (a)
    // LRP only: the block input, the norms' outputs, the attention context (W_O's input), the
    // attention output (+ bias), the MLP activation (W_down's input), the MLP output.
    MatS<S> xin, xn1, att, o, xn2, act, f;
  };
  struct Layer {
    W w;
  };

  LmConfig cfg_;
  int T_;
  bool lrp_ = true;
  bool llama_ = true;
  std::vector<Layer> layers_;
  std::vector<Acts> acts_;
  NormCache final_;
  MatS<S> xnf_;
  WeightS<S> nf_, nfb_, out_;
  std::vector<S> cos_, sin_;   // [T, Dh/2]

  void rope_table() {
    const int half = cfg_.head_dim / 2;
    const nn::RopeOptions ro{cfg_.head_dim, cfg_.rope_base, cfg_.rope_scale, cfg_.rope_style};
    cos_.resize(static_cast<size_t>(T_) * half);
    sin_.resize(cos_.size());
    for (int p = 0; p < T_; ++p)
      for (int i = 0; i < half; ++i) {
        const double th = nn::rope_angle(ro, p, i);
        cos_[static_cast<size_t>(p) * half + i] = static_cast<S>(std::cos(th));
        sin_[static_cast<size_t>(p) * half + i] = static_cast<S>(std::sin(th));
      }
  }
  // Rotates (inverse = false) or rotates back (the transpose, for gradients) every head of every row.
  void rope(MatS<S>& x, int heads, bool inverse) const {
    const int Dh = cfg_.head_dim, half = Dh / 2;
    const bool adj = cfg_.rope_style == nn::RopeStyle::Adjacent;
    const int stride = adj ? 2 : 1, partner = adj ? 1 : half;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const S* cs = cos_.data() + static_cast<size_t>(r) * half;
      const S* sn = sin_.data() + static_cast<size_t>(r) * half;
      for (int h = 0; h < heads; ++h) {
        S* p = x.data() + r * x.cols() + static_cast<Eigen::Index>(h) * Dh;
        for (int i = 0; i < half; ++i) {
          S& a = p[i * stride];
          S& b = p[i * stride + partner];
          const S a0 = a, b0 = b, s = inverse ? -sn[i] : sn[i];
          a = a0 * cs[i] - b0 * s;
          b = a0 * s + b0 * cs[i];
        }
      }
    }
  }
  void rope_backward(MatS<S>& g, int heads) const { rope(g, heads, true); }

  // y = norm(x) per row (RMSNorm for llama, LayerNorm for gpt2), caching what the backward needs.
  void norm_forward(const MatS<S>& x, const WeightS<S>& g, const WeightS<S>& b, NormCache& nc, MatS<S>& y) const {
    const Eigen::Index N = x.rows(), D = x.cols();
    const S eps = static_cast<S>(cfg_.norm_eps);
    nc.xhat.resize(N, D);
    nc.inv.resize(N);
    y.resize(N, D);
    for (Eigen::Index r = 0; r < N; ++r) {
      if (llama_) {
        const S inv = S(1) / std::sqrt(x.row(r).squaredNorm() / static_cast<S>(D) + eps);
        nc.xhat.row(r) = x.row(r) * inv;
        nc.inv[r] = inv;
        y.row(r) = nc.xhat.row(r).cwiseProduct((*g).row(0));
      } else {
        const S mean = x.row(r).mean();
        const S var = (x.row(r).array() - mean).square().mean();
        const S inv = S(1) / std::sqrt(var + eps);
        nc.xhat.row(r) = (x.row(r).array() - mean) * inv;
        nc.inv[r] = inv;
        y.row(r) = nc.xhat.row(r).cwiseProduct((*g).row(0)) + (*b).row(0);
      }
    }
  }
  // d/dx of row r from d/dy of that row.
  template <class G>
  void norm_backward(const NormCache& nc, int r, const G& gy, const MatS<S>& gamma, MatS<S>& gx) const {
    const Eigen::Index D = nc.xhat.cols();
    const RowS<S> gxh = gy.cwiseProduct(gamma.row(0));
    const auto xh = nc.xhat.row(r);
    const S dot = gxh.dot(xh) / static_cast<S>(D);
    if (llama_) gx = (gxh - xh * dot) * nc.inv[r];
    else gx = ((gxh.array() - gxh.mean()) - xh.array() * dot).matrix() * nc.inv[r];
  }

  // LRP through block l (rows 0..n-1): R holds the relevance of the block output on entry and of its
  // input on exit; RA receives R^(A) of each head's map [n, n]; absorbed gathers what the rules drop.
  //   x_out = x_mid + f: lrp_add; f = W_down act: lrp_linear; act = silu(g) * u: each operand half,
  //   silu passing through (gpt2: act = gelu(a), passing through); g, u = W_gate/W_up xn2: lrp_linear;
  //   xn2 = norm(x_mid) passes through, the two parts of x_mid summed.
  //   x_mid = x_in + o: lrp_add; o = W_O att: lrp_linear; per head ctx = A V and S = Q K^T:
  //   lrp_matmul (softmax passing through), K/V relevance summed over the query heads of a KV group;
  //   Q, K = RoPE(Q', K'): lrp_rotation (w^2 rule) per pair; Q', K', V = W xn1 (+ b): lrp_linear, the bias
  //   taking nothing; xn1 = norm(x_in) passes through, the parts of x_in summed.
  void lrp_layer(int l, int n, MatS<S>& R, std::vector<MatS<S>>& RA, double& absorbed) const {
    using M = MatS<S>;
    const LmConfig& c = cfg_;
    const int H = c.heads, Hkv = c.kv_heads, Dh = c.head_dim, group = H / Hkv, D = c.dim;
    const Acts& a = acts_[l];
    const W& w = layers_[l].w;
    auto top = [n](const M& m) { return M(m.topRows(n)); };
    auto lin = [&](const M& x, const MatS<S>& weight, const M& Rout) {   // weight [out, in]
      return nn::lrp_linear<S>(x, M(weight.transpose()), Rout, &absorbed);
    };
    const M xin = top(a.xin), o = top(a.o);
    M Rmid, Rf, Rin, Ro;
    nn::lrp_add<S>(M(xin + o), top(a.f), R, Rmid, Rf);
    const M xn2 = top(a.xn2);
    const M Ract = lin(top(a.act), *w.down, Rf);
    if (llama_) {
      const M g = top(a.a), silu = (g.array() / (S(1) + (-g.array()).exp())).matrix();
      M Rg, Ru;
      nn::lrp_product<S>(silu, top(a.u), Ract, Rg, Ru);   // silu passes Rg through to g
      Rmid += lin(xn2, *w.gate, Rg);
      Rmid += lin(xn2, *w.up, Ru);
    } else {
      Rmid += lin(xn2, *w.up, Ract);
    }
    nn::lrp_add<S>(xin, o, Rmid, Rin, Ro);
    const M Ratt = lin(top(a.att), *w.o, Ro);   // [n, QW]
    M Rq = M::Zero(n, H * Dh), Rk = M::Zero(n, Hkv * Dh), Rv = M::Zero(n, Hkv * Dh), RV, RQ, RK;
    RA.resize(H);
    for (int h = 0; h < H; ++h) {
      const Eigen::Index qc = static_cast<Eigen::Index>(h) * Dh, kc = static_cast<Eigen::Index>(h / group) * Dh;
      nn::lrp_matmul<S>(M(a.A[h].topLeftCorner(n, n)), M(a.v.topRows(n).middleCols(kc, Dh)),
                        M(Ratt.middleCols(qc, Dh)), RA[h], RV);
      Rv.middleCols(kc, Dh) += RV;
      nn::lrp_matmul<S>(M(a.q.topRows(n).middleCols(qc, Dh)), M(a.k.topRows(n).middleCols(kc, Dh).transpose()), RA[h],
                        RQ, RK);
      Rq.middleCols(qc, Dh) = RQ;
      Rk.middleCols(kc, Dh) += RK.transpose();
    }
    const M xn1 = top(a.xn1);
    if (llama_) {
      lrp_rope(H, Rq);
      lrp_rope(Hkv, Rk);
      Rin += lin(xn1, *w.q, Rq);
      Rin += lin(xn1, *w.k, Rk);
      Rin += lin(xn1, *w.v, Rv);
    } else {
      M Rqkv(n, 3 * D);
      Rqkv << Rq, Rk, Rv;
      Rin += lin(xn1, *w.qkv, Rqkv);
    }
    R = std::move(Rin);
  }
  // Relevance of RoPE's outputs (rows of Rx, in place) to its inputs, pair by pair.
  void lrp_rope(int heads, MatS<S>& Rx) const {
    const int Dh = cfg_.head_dim, half = Dh / 2;
    const bool adj = cfg_.rope_style == nn::RopeStyle::Adjacent;
    const int stride = adj ? 2 : 1, partner = adj ? 1 : half;
    for (Eigen::Index r = 0; r < Rx.rows(); ++r) {
      const S* cs = cos_.data() + static_cast<size_t>(r) * half;
      const S* sn = sin_.data() + static_cast<size_t>(r) * half;
      for (int h = 0; h < heads; ++h) {
        S* rp = Rx.data() + r * Rx.cols() + static_cast<Eigen::Index>(h) * Dh;
        for (int i = 0; i < half; ++i) {
          const int ia = i * stride, ib = i * stride + partner;
          S ra, rb;
          nn::lrp_rotation<S>(cs[i], sn[i], rp[ia], rp[ib], ra, rb);
          rp[ia] = ra;
          rp[ib] = rb;
        }
      }
    }
  }

  static void linear(const MatS<S>& x, const MatS<S>& w, const WeightS<S>& b, MatS<S>& y) {
    y.noalias() = x * w.transpose();
    if (b) y.rowwise() += (*b).row(0);
  }

  void forward(const LmModel& m, const std::vector<int>& ids, const LmAttentionPerturbation* perturb) {
    const LmConfig& c = cfg_;
    const int T = T_, D = c.dim, H = c.heads, Hkv = c.kv_heads, Dh = c.head_dim, group = H / Hkv;
    const S scale = S(1) / std::sqrt(static_cast<S>(Dh));
    const Mat& tok = m.weight("token_embd.weight");
    MatS<S> x(T, D);
    for (int t = 0; t < T; ++t) {
      x.row(t) = tok.row(ids[t]).cast<S>();
      if (!llama_) x.row(t) += m.weight("position_embd.weight").row(t).cast<S>();
    }
    acts_.resize(c.layers);
    MatS<S> xn, qkv, att(T, H * Dh), proj, act;
    for (int l = 0; l < c.layers; ++l) {
      Acts& a = acts_[l];
      const W& w = layers_[l].w;
      if (lrp_) a.xin = x;
      norm_forward(x, w.n1, w.n1b, a.norm1, xn);
      if (lrp_) a.xn1 = xn;
      if (llama_) {
        linear(xn, *w.q, w.bq, a.q);
        linear(xn, *w.k, w.bk, a.k);
        linear(xn, *w.v, w.bv, a.v);
        rope(a.q, H, false);
        rope(a.k, Hkv, false);
      } else {
        linear(xn, *w.qkv, w.bqkv, qkv);
        a.q = qkv.leftCols(D);
        a.k = qkv.middleCols(D, D);
        a.v = qkv.rightCols(D);
      }
      a.A.assign(H, MatS<S>());
      for (int h = 0; h < H; ++h) {
        const int g = h / group;
        MatS<S>& A = a.A[h];
        A.noalias() = a.q.middleCols(static_cast<Eigen::Index>(h) * Dh, Dh) *
                      a.k.middleCols(static_cast<Eigen::Index>(g) * Dh, Dh).transpose();
        for (int i = 0; i < T; ++i) {
          auto row = A.row(i);
          const S mx = (row.head(i + 1) * scale).maxCoeff();
          S sum = 0;
          for (int j = 0; j <= i; ++j) sum += (row(j) = std::exp(row(j) * scale - mx));
          row.head(i + 1) /= sum;
          row.tail(T - i - 1).setZero();
        }
        if (perturb && perturb->layer == l && perturb->head == h) A(perturb->query, perturb->key) += static_cast<S>(perturb->delta);
        att.middleCols(static_cast<Eigen::Index>(h) * Dh, Dh).noalias() = A * a.v.middleCols(static_cast<Eigen::Index>(g) * Dh, Dh);
      }
      linear(att, *w.o, w.bo, proj);
      x += proj;
      if (lrp_) {
        a.att = att;
        a.o = proj;
      }
      norm_forward(x, w.n2, w.n2b, a.norm2, xn);
      if (lrp_) a.xn2 = xn;
      if (llama_) {
        a.a.noalias() = xn * (*w.gate).transpose();
        linear(xn, *w.up, w.bup, a.u);
        act = (a.a.array() / (S(1) + (-a.a.array()).exp()) * a.u.array()).matrix();
      } else {
        linear(xn, *w.up, w.bup, a.a);
        const S k = static_cast<S>(0.7978845608028654), cc = static_cast<S>(0.044715);
        act = (S(0.5) * a.a.array() * (S(1) + (k * (a.a.array() + cc * a.a.array().cube())).tanh())).matrix();
      }
      linear(act, *w.down, w.bdown, proj);
      x += proj;
      if (lrp_) {
        a.act = act;
        a.f = proj;
      }
    }
    norm_forward(x, nf_, nfb_, final_, xnf_);
  }
};

template <class S>
std::vector<LmExplanation> explain_all(const LmModel& m, const std::vector<int>& ids,
                                       const std::vector<LmExplainTarget>& targets, const LmRelevanceOptions& opt) {
  const LmBackward<S> bw(m, ids, opt.perturb, opt.lrp);
  std::vector<LmExplanation> out(targets.size());
  // Longest first (the cost grows with the position), each thread on its own targets.
  std::vector<int> order(targets.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return targets[a].position > targets[b].position; });
  const int threads = std::max(1, std::min<int>(opt.threads > 0 ? opt.threads : nn::threads(), static_cast<int>(targets.size())));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int i = 0; i < static_cast<int>(order.size()); ++i)
    bw.explain(targets[order[i]], opt.keep_gradients, out[order[i]]);
  return out;
}

void check_inputs(const LmModel& m, const std::vector<int>& ids, const std::vector<LmExplainTarget>& targets,
                  const LmAttentionPerturbation* perturb) {
  const LmConfig& c = m.config();
  const int T = static_cast<int>(ids.size());
  if (T == 0) throw UsageError("explain: no tokens");
  if (T > c.context) throw UsageError(fmt::format("explain: {} tokens exceed the model's context of {}", T, c.context));
  for (int id : ids)
    if (id < 0 || id >= c.vocab) throw InputError("", fmt::format("token id {} outside the vocabulary of {}", id, c.vocab));
  for (const LmExplainTarget& t : targets)
    if (t.position < 0 || t.position >= T || t.token < 0 || t.token >= c.vocab)
      throw UsageError(fmt::format("explain: target (position {}, token {}) outside {} positions / vocabulary {}",
                                   t.position, t.token, T, c.vocab));
  if (perturb && (perturb->layer < 0 || perturb->layer >= c.layers || perturb->head < 0 || perturb->head >= c.heads ||
                  perturb->key < 0 || perturb->key > perturb->query || perturb->query >= T))
    throw UsageError("explain: perturbation outside the causal attention maps");
}

}  // namespace

std::vector<LmExplanation> lm_explain(const LmModel& model, const std::vector<int>& ids,
                                      const std::vector<LmExplainTarget>& targets, const LmRelevanceOptions& opt) {
  check_inputs(model, ids, targets, opt.perturb);
  return opt.float64 ? explain_all<double>(model, ids, targets, opt) : explain_all<float>(model, ids, targets, opt);
}

double lm_target_logit(const LmModel& model, const std::vector<int>& ids, const LmExplainTarget& target,
                       const LmRelevanceOptions& opt) {
  check_inputs(model, ids, {target}, opt.perturb);
  return opt.float64 ? LmBackward<double>(model, ids, opt.perturb, false).logit(target)
                     : LmBackward<float>(model, ids, opt.perturb, false).logit(target);
}

}  // namespace attnviz::models

namespace attnviz::models {

void record_lm_relevance(const LmModel& model, const std::vector<int>& ids, int prompt_tokens, int explain_step,
                         int threads, AttentionRecord& record) {
  const int T = static_cast<int>(ids.size());
  if (prompt_tokens < 1 || prompt_tokens > T) throw UsageError("relevance: the prompt must have 1..T tokens");
  if (explain_step < 0) throw UsageError("--explain-step must be >= 0");
  std::vector<LmExplainTarget> targets;
  for (int s = prompt_tokens; s < T; ++s)   // s: position of a generated token
    if (explain_step == 0 || s - prompt_tokens + 1 == explain_step) targets.push_back({s - 1, ids[s]});
  LmRelevanceOptions o;
  o.threads = threads;
  const std::vector<LmExplanation> ex = targets.empty() ? std::vector<LmExplanation>{} : lm_explain(model, ids, targets, o);
  AttentionTensor t("decoder.relevance", 1, T, T, "tokens", "tokens");
  std::fill(t.data.begin(), t.data.end(), 0.f);
  AttentionTensor tl("decoder.lrp_relevance", 1, T, T, "tokens", "tokens");
  std::fill(tl.data.begin(), tl.data.end(), 0.f);
  std::vector<int> rows;
  std::vector<double> logits, inputs, absorbed;
  for (const LmExplanation& e : ex) {
    double in = 0;
    for (double x : e.lrp_input) in += x;
    inputs.push_back(in);
    absorbed.push_back(e.lrp_absorbed);
    for (size_t j = 0; j < e.relevance.size(); ++j) {
      t.at(0, e.target.position, static_cast<int>(j)) = static_cast<float>(e.relevance[j]);
      tl.at(0, e.target.position, static_cast<int>(j)) = static_cast<float>(e.lrp_relevance[j]);
    }
    rows.push_back(e.target.position);
    logits.push_back(e.logit);
  }
  record.tensors.push_back(std::move(t));
  record.tensors.push_back(std::move(tl));
  record.metadata["relevance_method"] =
      "grad-rollout (Chefer, Gur & Wolf 2021 ICCV): R = (I + A_L) ... (I + A_1), A_l = mean_h (dlogit/dA * A)^+ "
      "(causal); row t explains the logit of token t+1 at position t";
  record.metadata["lrp_relevance_method"] =
      "Chefer, Gur & Wolf 2021 CVPR transformer attribution: LRP relevance R(A) of every attention map (seed 1 on "
      "the explained logit; Linear alpha=1 beta=0, residual adds split and renormalised, A V and Q K^T and the SwiGLU "
      "product halved, RoPE pairs by the w^2 rule, norms/softmax/activations pass through), then "
      "R = (I + A_L) ... (I + A_1), A_l = mean_h (dlogit/dA * R(A))^+ (causal); rows as decoder.relevance";
  record.metadata["relevance_rows"] = nlohmann::json(rows).dump();
  record.metadata["relevance_logits"] = nlohmann::json(logits).dump();
  record.metadata["lrp_input_relevance"] = nlohmann::json(inputs).dump();
  record.metadata["lrp_absorbed"] = nlohmann::json(absorbed).dump();
}

}  // namespace attnviz::models
