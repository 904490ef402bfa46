// Attention layers: weights sink, multi-head self/cross attention over the blocked kernel,
// single-head attention with any scoring function (RNN decoders), and attention pooling.
#include <attnviz/error.hpp>
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/optim.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/parallel.hpp"

namespace attnviz::nn {

const char* score_name(Score s) {
  switch (s) {
    case Score::ScaledDot: return "scaled-dot";
    case Score::Dot: return "dot";
    case Score::General: return "general";
    case Score::Additive: return "additive";
  }
  return "?";
}

Score parse_score(const std::string& name) {
  for (Score s : {Score::ScaledDot, Score::Dot, Score::General, Score::Additive})
    if (name == score_name(s)) return s;
  throw UsageError("unknown attention scoring function '" + name +
                   "' (expected scaled-dot, dot, general or additive)");
}

void AttentionWeights::resize(int b, int h, int nq, int nk) {
  B = b; H = h; Nq = nq; Nk = nk;
  data.assign(static_cast<size_t>(b) * h * nq * nk, 0.f);
}

AttentionTensor AttentionWeights::tensor(int b, const std::string& name, const std::string& query_axis,
                                         const std::string& key_axis, int nq, int nk) const {
  if (b < 0 || b >= B) throw std::out_of_range("AttentionWeights::tensor: batch index out of range");
  if (nq < 0 || nq > Nq) nq = Nq;
  if (nk < 0 || nk > Nk) nk = Nk;
  AttentionTensor t(name, H, nq, nk, query_axis, key_axis);
  for (int h = 0; h < H; ++h) {
    const float* src = at(b, h);
    for (int i = 0; i < nq; ++i)
      for (int j = 0; j < nk; ++j) t.at(h, i, j) = src[static_cast<size_t>(i) * Nk + j];
  }
  return t;
}

// ------------------------------------------------------------------------- MultiHeadAttention
MultiHeadAttention::MultiHeadAttention(const MultiHeadAttentionOptions& o) : opt(o) {
  if (o.heads <= 0 || o.dim % o.heads)
    throw std::invalid_argument("MultiHeadAttention: dim must be a multiple of heads");
  if (o.score != Score::ScaledDot && o.score != Score::Dot)
    throw std::invalid_argument("MultiHeadAttention: score must be scaled-dot or dot (use ScoredAttention)");
  const int kv = o.kv_dim > 0 ? o.kv_dim : o.dim;
  wq = Linear(o.dim, o.dim, o.bias);
  wk = Linear(kv, o.dim, o.bias);
  wv = Linear(kv, o.dim, o.bias);
  wo = Linear(o.dim, o.dim, o.bias);
}

void MultiHeadAttention::init(Rng& rng) {
  wq.init(rng);
  wk.init(rng);
  wv.init(rng);
  wo.init(rng);
}

void MultiHeadAttention::collect(ParamSet& set, const std::string& prefix) {
  wq.collect(set, scoped(prefix, "wq"));
  wk.collect(set, scoped(prefix, "wk"));
  wv.collect(set, scoped(prefix, "wv"));
  wo.collect(set, scoped(prefix, "wo"));
}

namespace {
KernelOptions kernel_options(const MultiHeadAttentionOptions& o, const AttnMask& mask, int B) {
  if (!mask.key_lengths.empty() && static_cast<int>(mask.key_lengths.size()) != B)
    throw std::invalid_argument("attention mask: " + std::to_string(mask.key_lengths.size()) +
                                " key lengths for a batch of " + std::to_string(B));
  KernelOptions ko;
  ko.scale = o.score == Score::ScaledDot ? 1.f / std::sqrt(static_cast<float>(o.dim / o.heads)) : 1.f;
  ko.key_lengths = mask.key_lengths.empty() ? nullptr : mask.key_lengths.data();
  ko.causal = mask.causal;
  return ko;
}
}  // namespace

namespace {
// [a | b | c] of the projections' weights or biases, side by side.
Mat side_by_side(std::initializer_list<const Mat*> parts) {
  Eigen::Index cols = 0;
  for (const Mat* p : parts) cols += p->cols();
  Mat out(parts.begin()[0]->rows(), cols);
  Eigen::Index c = 0;
  for (const Mat* p : parts) {
    out.middleCols(c, p->cols()) = *p;
    c += p->cols();
  }
  return out;
}
}  // namespace

Mat MultiHeadAttention::forward(const Mat& x, int B, int T, const AttnMask& mask, AttentionWeights* weights) {
  return forward(Mat(x), B, T, mask, weights);
}

Mat MultiHeadAttention::forward(Mat&& x, int B, int T, const AttnMask& mask, AttentionWeights* weights) {
  // x: [B*T, D] -> qp_ = x [wq | wk | wv] + [bq | bk | bv]: [B*T, 3D], one GEMM
  if (x.rows() != static_cast<Eigen::Index>(B) * T)
    throw std::invalid_argument("MultiHeadAttention: input rows do not match B*N");
  if (x.cols() != wq.weight.value.rows() || x.cols() != wk.weight.value.rows())
    throw std::invalid_argument("MultiHeadAttention: input has " + std::to_string(x.cols()) + " columns, expected " +
                                std::to_string(wq.weight.value.rows()));
  B_ = B; Nq_ = Nk_ = T;
  self_ = true;
  mask_ = mask;
  x_ = std::move(x);
  const Mat w = side_by_side({&wq.weight.value, &wk.weight.value, &wv.weight.value});
  if (opt.bias) {
    qp_.resize(x_.rows(), w.cols());
    qp_.rowwise() = side_by_side({&wq.bias.value, &wk.bias.value, &wv.bias.value}).row(0);
    matmul(x_, w, qp_, true);
  } else {
    matmul(x_, w, qp_);
  }
  kvp_.resize(0, 0);
  return attend(B, T, T, weights);
}

Mat MultiHeadAttention::forward(const Mat& xq, const Mat& xkv, int B, int Nq, int Nk, const AttnMask& mask,
                                AttentionWeights* weights) {
  // xq: [B*Nq, D], xkv: [B*Nk, kv_dim] -> [B*Nq, D]
  if (xq.rows() != static_cast<Eigen::Index>(B) * Nq || xkv.rows() != static_cast<Eigen::Index>(B) * Nk)
    throw std::invalid_argument("MultiHeadAttention: input rows do not match B*N");
  B_ = B; Nq_ = Nq; Nk_ = Nk;
  self_ = false;
  mask_ = mask;
  x_.resize(0, 0);
  qp_ = wq.forward(xq);
  const Mat k = wk.forward(xkv), v = wv.forward(xkv);
  kvp_ = side_by_side({&k, &v});
  return attend(B, Nq, Nk, weights);
}

Mat MultiHeadAttention::attend(int B, int Nq, int Nk, AttentionWeights* weights) {
  const int H = opt.heads, Dh = opt.dim / opt.heads;
  KernelOptions ko = kernel_options(opt, mask_, B);
  lse_.assign(static_cast<size_t>(B) * H * Nq, 0.f);
  ko.lse = lse_.data();
  if (weights) {
    weights->resize(B, H, Nq, Nk);
    ko.weights = weights->data.data();
  }
  ctx_.resize(static_cast<Eigen::Index>(B) * Nq, opt.dim);
  dense_ = Nk <= opt.dense_max_keys;
  if (dense_) {
    dense_forward(ko);
    if (weights) std::copy(dense_w_.data(), dense_w_.data() + dense_w_.size(), weights->data.begin());
    return wo.forward(ctx_);
  }
  KernelShape ks{B, H, Nq, Nk, Dh};
  ks.ldq = static_cast<int>(q().outerStride());
  ks.ldk = ks.ldv = static_cast<int>(k().outerStride());
  attention_blocked(q().data(), k().data(), v().data(), ctx_.data(), ks, ko);
  return wo.forward(ctx_);
}

void MultiHeadAttention::dense_forward(const KernelOptions& ko) {
  // Per (b, h): A = softmax(scale q k^T) [Nq, Nk] with hidden keys at -inf, ctx = A v [Nq, Dh].
  const int B = B_, Nq = Nq_, Nk = Nk_, H = opt.heads, Dh = opt.dim / opt.heads;
  const ConstStrided qs = q(), ks = k(), vs = v();
  dense_w_.resize(static_cast<Eigen::Index>(B) * H * Nq, Nk);
  detail::parallel_rows(static_cast<Eigen::Index>(B) * H, 4.0 * B * H * Nq * Nk * Dh,
                        [&](Eigen::Index i0, Eigen::Index i1) {
    for (Eigen::Index bh = i0; bh < i1; ++bh) {
      const Eigen::Index b = bh / H, h = bh % H;
      auto q = qs.block(b * Nq, h * Dh, Nq, Dh);   // [Nq, Dh]
      auto k = ks.block(b * Nk, h * Dh, Nk, Dh);   // [Nk, Dh]
      auto v = vs.block(b * Nk, h * Dh, Nk, Dh);   // [Nk, Dh]
      MatMap a(dense_w_.data() + bh * Nq * Nk, Nq, Nk);
      a.noalias() = (q * k.transpose()) * ko.scale;
      const int len = ko.key_lengths ? std::clamp(ko.key_lengths[b], 0, Nk) : Nk;
      for (int i = 0; i < Nq; ++i) {
        const int seen = ko.causal ? std::min(len, i + 1) : len;
        a.row(i).tail(Nk - seen).setConstant(-std::numeric_limits<float>::infinity());
      }
      softmax_rows(a);
      ctx_.block(b * Nq, h * Dh, Nq, Dh).noalias() = a * v;
    }
  });
}

void MultiHeadAttention::dense_backward(const Mat& dctx, float* dqp, float* dkp, float* dvp, Eigen::Index ldq,
                                        Eigen::Index ldkv) const {
  // Per (b, h), the forward in reverse:
  //   ctx = A v          =>  dA = dctx v^T, dv = A^T dctx
  //   A = softmax(S)     =>  dS = A * (dA - rowsum(A * dA))
  //   S = scale q k^T    =>  dq = scale dS k, dk = scale dS^T q
  const int B = B_, Nq = Nq_, Nk = Nk_, H = opt.heads, D = opt.dim, Dh = D / H;
  const float scale = opt.score == Score::ScaledDot ? 1.f / std::sqrt(static_cast<float>(Dh)) : 1.f;
  using Strided = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  const ConstStrided qs = q(), ks = k(), vs = v();
  Strided dq(dqp, static_cast<Eigen::Index>(B) * Nq, D, Eigen::OuterStride<>(ldq));
  Strided dk(dkp, static_cast<Eigen::Index>(B) * Nk, D, Eigen::OuterStride<>(ldkv));
  Strided dv(dvp, static_cast<Eigen::Index>(B) * Nk, D, Eigen::OuterStride<>(ldkv));
  detail::parallel_rows(static_cast<Eigen::Index>(B) * H, 8.0 * B * H * Nq * Nk * Dh,
                        [&](Eigen::Index i0, Eigen::Index i1) {
    Mat da(Nq, Nk), ds(Nq, Nk);
    for (Eigen::Index bh = i0; bh < i1; ++bh) {
      const Eigen::Index b = bh / H, h = bh % H;
      auto q = qs.block(b * Nq, h * Dh, Nq, Dh);
      auto k = ks.block(b * Nk, h * Dh, Nk, Dh);
      auto v = vs.block(b * Nk, h * Dh, Nk, Dh);
      auto dc = dctx.block(b * Nq, h * Dh, Nq, Dh);
      ConstMatMap a(dense_w_.data() + bh * Nq * Nk, Nq, Nk);
      da.noalias() = dc * v.transpose();
      dv.block(b * Nk, h * Dh, Nk, Dh).noalias() = a.transpose() * dc;
      ds = a.cwiseProduct(da);
      Vec rs = ds.rowwise().sum();
      ds -= a.cwiseProduct(rs.replicate(1, Nk));
      ds *= scale;
      dq.block(b * Nq, h * Dh, Nq, Dh).noalias() = ds * k;
      dk.block(b * Nk, h * Dh, Nk, Dh).noalias() = ds.transpose() * q;
    }
  });
}

Mat MultiHeadAttention::backward(const Mat& dy, AttentionWeights* dweights) {
  if (!self_) throw std::logic_error("MultiHeadAttention::backward(dy) after a cross-attention forward");
  return backward_impl(dy, nullptr, dweights);
}

namespace {
// d(loss)/d(weights) of every (batch, head): ctx = A v  =>  dA = dctx v^T, 0 on hidden keys.
// dctx: [B*Nq, H*Dh], v: [B*Nk, H*Dh] -> dw [B, H, Nq, Nk]
void weights_gradient(const Mat& dctx, const MultiHeadAttention::ConstStrided& v, int B, int H, int Nq, int Nk,
                      const AttnMask& mask, AttentionWeights& dw) {
  const int Dh = static_cast<int>(v.cols()) / H;
  dw.resize(B, H, Nq, Nk);
  detail::parallel_rows(static_cast<Eigen::Index>(B) * H, 2.0 * B * H * Nq * Nk * Dh,
                        [&](Eigen::Index i0, Eigen::Index i1) {
    for (Eigen::Index bh = i0; bh < i1; ++bh) {
      const int b = static_cast<int>(bh / H), h = static_cast<int>(bh % H);
      MatMap da(dw.at(b, h), Nq, Nk);   // [Nq, Nk]
      da.noalias() = dctx.block(static_cast<Eigen::Index>(b) * Nq, h * Dh, Nq, Dh) *
                     v.block(static_cast<Eigen::Index>(b) * Nk, h * Dh, Nk, Dh).transpose();
      const int len = mask.key_lengths.empty() ? Nk : std::clamp(mask.key_lengths[b], 0, Nk);
      for (int i = 0; i < Nq; ++i) {
        const int seen = mask.causal ? std::min(len, i + 1) : len;
        da.row(i).tail(Nk - seen).setZero();
      }
    }
  });
}

// Parameter gradients of the projections that produced columns [c0, c0 + out) of the packed
// projection from x: dW += x^T dp, db += column sums of dp.
void add_projection_grads(Linear& l, const Mat& dw, const RowVec& db, Eigen::Index c0) {
  const Eigen::Index out = l.weight.value.cols();
  l.weight.grad += dw.middleCols(c0, out);
  if (l.has_bias) l.bias.grad.row(0) += db.segment(c0, out);
}
}  // namespace

Mat MultiHeadAttention::backward(const Mat& dy, Mat& dxkv, AttentionWeights* dweights) {
  return backward_impl(dy, &dxkv, dweights);
}

Mat MultiHeadAttention::backward_impl(const Mat& dy, Mat* dxkv, AttentionWeights* dweights) {
  // Undo wo, then the kernel, then the projections.
  Mat dctx = wo.backward(dy);
  const int H = opt.heads, D = opt.dim, Dh = D / H;
  if (dweights) weights_gradient(dctx, v(), B_, H, Nq_, Nk_, mask_, *dweights);
  KernelOptions ko = kernel_options(opt, mask_, B_);
  KernelShape ks{B_, H, Nq_, Nk_, Dh};
  // The gradients of q, k, v in the layouts of q(), k(), v(): dp [B*Nq, 3D] (self) or dq [B*Nq, D]
  // and dkv [B*Nk, 2D] (cross).
  Mat dp(qp_.rows(), qp_.cols()), dkv(kvp_.rows(), kvp_.cols());
  float* dq = dp.data();
  float* dk = self_ ? dp.data() + D : dkv.data();
  float* dv = dk + D;
  const Eigen::Index ldq = dp.cols(), ldkv = self_ ? dp.cols() : dkv.cols();
  if (dense_) {
    dense_backward(dctx, dq, dk, dv, ldq, ldkv);
  } else {
    ks.ldq = static_cast<int>(ldq);
    ks.ldk = ks.ldv = static_cast<int>(ldkv);
    attention_backward(q().data(), k().data(), v().data(), ctx_.data(), dctx.data(), lse_.data(), dq, dk, dv, ks, ko);
  }
  if (!self_) {
    const Mat dxq = wq.backward(dp);
    *dxkv = wk.backward(Mat(dkv.leftCols(D)));
    *dxkv += wv.backward(Mat(dkv.rightCols(D)));
    return dxq;
  }
  // Self: dW = x^T dp in one GEMM, split over wq | wk | wv.
  Mat dw;
  matmul_tn(x_, dp, dw);
  const RowVec db = opt.bias ? RowVec(dp.colwise().sum()) : RowVec::Zero(dp.cols());
  add_projection_grads(wq, dw, db, 0);
  add_projection_grads(wk, dw, db, D);
  add_projection_grads(wv, dw, db, 2 * D);
  if (!dxkv) {   // dx = dp [wq | wk | wv]^T, one GEMM
    Mat dx;
    matmul_nt(dp, side_by_side({&wq.weight.value, &wk.weight.value, &wv.weight.value}), dx);
    return dx;
  }
  // The query and key/value parts separately (the caller asked for both).
  Mat dxq;
  matmul_nt(Mat(dp.leftCols(D)), wq.weight.value, dxq);
  matmul_nt(Mat(dp.rightCols(2 * D)), side_by_side({&wk.weight.value, &wv.weight.value}), *dxkv);
  return dxq;
}

// ---------------------------------------------------------------------------- ScoredAttention
ScoredAttention::ScoredAttention(const ScoredAttentionOptions& o) : opt(o) {
  if ((o.score == Score::Dot || o.score == Score::ScaledDot) && o.query_dim != o.key_dim)
    throw std::invalid_argument("ScoredAttention: dot scores need query_dim == key_dim");
  if (o.score == Score::General) W = Param(o.query_dim, o.key_dim);
  if (o.score == Score::Additive) {
    W = Param(o.query_dim, o.hidden);
    U = Param(o.key_dim, o.hidden);
    b = Param(1, o.hidden, false);
    v = Param(1, o.hidden);
  }
}

void ScoredAttention::init(Rng& rng) {
  if (opt.score == Score::General) xavier_uniform(W.value, rng);
  if (opt.score == Score::Additive) {
    xavier_uniform(W.value, rng);
    xavier_uniform(U.value, rng);
    b.value.setZero();
    uniform_init(v.value, rng, 1.f / std::sqrt(static_cast<float>(opt.hidden)));
  }
}

void ScoredAttention::collect(ParamSet& set, const std::string& prefix) {
  if (opt.score == Score::General) set.add(W, scoped(prefix, "W"));
  if (opt.score == Score::Additive) {
    set.add(W, scoped(prefix, "W"));
    set.add(U, scoped(prefix, "U"));
    set.add(b, scoped(prefix, "b"));
    set.add(v, scoped(prefix, "v"));
  }
}

void ScoredAttention::set_keys(const Mat& keys, int B, int S, const std::vector<int>& key_lengths) {
  // keys: [B*S, Dk]
  if (keys.rows() != static_cast<Eigen::Index>(B) * S || keys.cols() != opt.key_dim)
    throw std::invalid_argument("ScoredAttention::set_keys: keys must be [B*S, key_dim]");
  if (!key_lengths.empty() && static_cast<int>(key_lengths.size()) != B)
    throw std::invalid_argument("ScoredAttention::set_keys: one key length per sequence expected");
  B_ = B;
  S_ = S;
  keys_ = keys;
  lengths_ = key_lengths.empty() ? std::vector<int>(B, S) : key_lengths;
  for (int& l : lengths_) l = std::clamp(l, 0, S);
  if (opt.score == Score::Additive) matmul(keys_, U.value, uk_);
  dkeys_ = Mat::Zero(keys.rows(), keys.cols());
  duk_ = opt.score == Score::Additive ? Mat::Zero(keys.rows(), opt.hidden) : Mat();
}

Mat ScoredAttention::forward(const Mat& q, int Nq, Cache& cache, AttentionWeights* weights) const {
  // q: [B*Nq, Dq] -> ctx [B*Nq, Dk]
  if (q.rows() != static_cast<Eigen::Index>(B_) * Nq || q.cols() != opt.query_dim)
    throw std::invalid_argument("ScoredAttention::forward: q must be [B*Nq, query_dim] (call set_keys first)");
  const int S = S_, A = opt.hidden, Dk = opt.key_dim;
  cache.Nq = Nq;
  cache.q = q;
  cache.w.setZero(q.rows(), S);
  Mat qw;   // general: [B*Nq, Dk], additive: [B*Nq, A]
  if (opt.score == Score::General || opt.score == Score::Additive) matmul(q, W.value, qw);
  if (opt.score == Score::General) cache.qk = qw;
  if (opt.score == Score::Additive) cache.qk.resize(q.rows() * S, A);
  const float scale = opt.score == Score::ScaledDot ? 1.f / std::sqrt(static_cast<float>(Dk)) : 1.f;
  Mat ctx = Mat::Zero(q.rows(), Dk);
  detail::parallel_rows(B_, 4.0 * B_ * Nq * S * std::max(A, Dk), [&](Eigen::Index b0, Eigen::Index b1) {
    RowVec e(S);
    for (Eigen::Index bb = b0; bb < b1; ++bb) {
      const int len = lengths_[bb];
      auto K = keys_.middleRows(bb * S, S);   // [S, Dk]
      for (int i = 0; i < Nq; ++i) {
        const Eigen::Index r = bb * Nq + i;
        for (int s = 0; s < len; ++s) {
          switch (opt.score) {
            case Score::Dot: case Score::ScaledDot: e(s) = scale * q.row(r).dot(K.row(s)); break;
            case Score::General: e(s) = qw.row(r).dot(K.row(s)); break;
            case Score::Additive: {
              auto t = cache.qk.row(r * S + s);
              t = (qw.row(r) + uk_.row(bb * S + s) + b.value.row(0)).array().tanh().matrix();
              e(s) = t.dot(v.value.row(0));
              break;
            }
          }
        }
        if (opt.score == Score::Additive)
          for (int s = len; s < S; ++s) cache.qk.row(r * S + s).setZero();
        if (len == 0) continue;   // no visible key: zero weights, zero context
        float m = e.head(len).maxCoeff();
        float sum = 0;
        for (int s = 0; s < len; ++s) sum += (e(s) = std::exp(e(s) - m));
        for (int s = 0; s < len; ++s) cache.w(r, s) = e(s) / sum;
        ctx.row(r).noalias() = cache.w.row(r).head(len) * K.topRows(len);
      }
    }
  });
  if (weights) {
    weights->resize(B_, 1, Nq, S);
    std::copy(cache.w.data(), cache.w.data() + cache.w.size(), weights->data.begin());
  }
  return ctx;
}

Mat ScoredAttention::backward(const Mat& dctx, const Cache& cache, const Mat* dweights) {
  // dctx: [B*Nq, Dk], dweights: [B*Nq, S] or null -> dq [B*Nq, Dq]
  if (dweights && (dweights->rows() != cache.q.rows() || dweights->cols() != S_))
    throw std::invalid_argument("ScoredAttention::backward: dweights must be [B*Nq, S]");
  const int S = S_, Nq = cache.Nq, A = opt.hidden, Dk = opt.key_dim;
  const float scale = opt.score == Score::ScaledDot ? 1.f / std::sqrt(static_cast<float>(Dk)) : 1.f;
  Mat ds = Mat::Zero(cache.q.rows(), S);                       // d(score) [B*Nq, S]
  Mat dqw = Mat::Zero(cache.q.rows(), opt.score == Score::Additive ? A : Dk);  // d(q W)
  Mat dq = Mat::Zero(cache.q.rows(), opt.query_dim);
  Mat da;                                                       // additive: d(pre-tanh) [B*Nq*S, A]
  if (opt.score == Score::Additive) da.setZero(cache.q.rows() * S, A);
  // Per sequence: rows bb*S.. of dkeys_/duk_ and rows bb*Nq.. of ds/dq/dqw belong to one thread.
  detail::parallel_rows(B_, 4.0 * B_ * Nq * S * std::max(A, Dk), [&](Eigen::Index b0, Eigen::Index b1) {
    for (Eigen::Index bb = b0; bb < b1; ++bb) {
      const int len = lengths_[bb];
      if (len == 0) continue;
      auto K = keys_.middleRows(bb * S, S);
      for (int i = 0; i < Nq; ++i) {
        const Eigen::Index r = bb * Nq + i;
        auto w = cache.w.row(r).head(len);
        // ctx = w K: dK += w^T dctx (values path); dw = K dctx
        dkeys_.middleRows(bb * S, len).noalias() += w.transpose() * dctx.row(r);
        RowVec dw = dctx.row(r) * K.topRows(len).transpose();
        if (dweights) dw += dweights->row(r).head(len);
        // softmax: ds = w * (dw - <w, dw>)
        const float wdw = w.dot(dw);
        ds.row(r).head(len) = w.cwiseProduct((dw.array() - wdw).matrix());
        switch (opt.score) {
          case Score::Dot: case Score::ScaledDot:
            dq.row(r).noalias() = scale * ds.row(r).head(len) * K.topRows(len);
            dkeys_.middleRows(bb * S, len).noalias() += scale * ds.row(r).head(len).transpose() * cache.q.row(r);
            break;
          case Score::General:
            dqw.row(r).noalias() = ds.row(r).head(len) * K.topRows(len);
            dkeys_.middleRows(bb * S, len).noalias() += ds.row(r).head(len).transpose() * cache.qk.row(r);
            break;
          case Score::Additive:
            for (int s = 0; s < len; ++s) {
              auto t = cache.qk.row(r * S + s);
              // e = v . t, t = tanh(a): da = ds * v * (1 - t^2)
              da.row(r * S + s) = ds(r, s) * (v.value.row(0).array() * (1.f - t.array().square())).matrix();
              dqw.row(r) += da.row(r * S + s);
              duk_.row(bb * S + s) += da.row(r * S + s);
            }
            break;
        }
      }
    }
  });
  // Shared parameter gradients, reduced in a fixed order after the parallel part.
  if (opt.score == Score::General) {
    matmul_tn(cache.q, dqw, W.grad, true);
    matmul_nt(dqw, W.value, dq);
  }
  if (opt.score == Score::Additive) {
    for (Eigen::Index r = 0; r < cache.q.rows(); ++r)
      for (int s = 0; s < S; ++s)
        if (ds(r, s) != 0.f) v.grad.row(0) += ds(r, s) * cache.qk.row(r * S + s);
    b.grad.row(0) += da.colwise().sum();
    matmul_tn(cache.q, dqw, W.grad, true);
    matmul_nt(dqw, W.value, dq);
  }
  return dq;
}

Mat ScoredAttention::keys_backward() {
  // additive: uk = keys U -> dU += keys^T duk, dkeys += duk U^T
  Mat dk = dkeys_;
  if (opt.score == Score::Additive) {
    matmul_tn(keys_, duk_, U.grad, true);
    matmul_nt(duk_, U.value, dk, true);
    duk_.setZero();
  }
  dkeys_.setZero();
  return dk;
}

// ---------------------------------------------------------------------------- AttentionPooling
AttentionPooling::AttentionPooling(const AttentionPoolingOptions& o)
    : opt(o), query(1, o.dim, false), attn(ScoredAttentionOptions{o.score, o.dim, o.dim, o.hidden}) {}

void AttentionPooling::init(Rng& rng) {
  normal_init(query.value, rng, 1.f / std::sqrt(static_cast<float>(opt.dim)));
  attn.init(rng);
}

void AttentionPooling::collect(ParamSet& set, const std::string& prefix) {
  set.add(query, scoped(prefix, "query"));
  attn.collect(set, scoped(prefix, "attn"));
}

Mat AttentionPooling::forward(const Mat& x, int B, int T, const std::vector<int>& lengths,
                              AttentionWeights* weights) {
  // x: [B*T, D] -> [B, D]
  attn.set_keys(x, B, T, lengths);
  Mat q = query.value.replicate(B, 1);   // [B, D]
  return attn.forward(q, 1, cache_, weights);
}

Mat AttentionPooling::backward(const Mat& dy) {
  Mat dq = attn.backward(dy, cache_);
  query.grad.row(0) += dq.colwise().sum();
  return attn.keys_backward();
}

}  // namespace attnviz::nn
