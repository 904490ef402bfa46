// Value zeroing (Mohebbi et al. 2023): one implementation on a block's residual sums, value rows,
// output projection and row-wise rest; the engine's pre-LN encoder block on top of it.
#include <attnviz/engine/context_mixing.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnviz::nn {

namespace {
double cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int d = 0; d < n; ++d) {
    ab += static_cast<double>(a[d]) * b[d];
    aa += static_cast<double>(a[d]) * a[d];
    bb += static_cast<double>(b[d]) * b[d];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 1.0;
}
}  // namespace

AttentionWeights value_zeroing(const Mat& s, const AttentionWeights& w, int b, const ValueRows& v,
                               const OutputProjection& wo, const BlockRest& rest, int batch_rows) {
  // s: [Nq, D]; w: [B, H, Nq, Nk]; v: Nk value rows; -> [1, 1, Nq, Nk]
  const int H = w.H, Nq = w.Nq, Nk = w.Nk, D = static_cast<int>(s.cols());
  const int Dwo = static_cast<int>(wo.out_by_in ? wo.weight->rows() : wo.weight->cols());
  if (b < 0 || b >= w.B || s.rows() != Nq || H != v.heads || D != Dwo || batch_rows <= 0)
    throw std::invalid_argument("value_zeroing: the residual sums, weights, values and output projection do not match");
  AttentionWeights out;
  out.resize(1, 1, Nq, Nk);
  if (Nq == 0 || Nk == 0) return out;
  Mat y(Nq, D);
  rest(s, y);                                  // the block's own outputs, through the same rest()
  float* c = out.at(0, 0);
  std::fill(c, c + static_cast<size_t>(Nq) * Nk, 0.f);

  Mat sz(batch_rows, D), yz(batch_rows, D);
  std::vector<std::pair<int, int>> who;        // (i, j) of each batch row
  who.reserve(batch_rows);
  auto flush = [&]() {
    if (who.empty()) return;
    const int n = static_cast<int>(who.size());
    const Mat in = sz.topRows(n);
    yz.resize(n, D);
    rest(in, yz);
    for (int r = 0; r < n; ++r) {
      const auto [i, j] = who[r];
      c[static_cast<size_t>(i) * Nk + j] = static_cast<float>(std::max(0.0, 1.0 - cosine(y.row(i).data(), yz.row(r).data(), D)));
    }
    who.clear();
  };
  // Keys in chunks so that the transformed values of a long sequence need not all be held at once.
  const int chunk = 64;
  for (int j0 = 0; j0 < Nk; j0 += chunk) {
    const int nj = std::min(chunk, Nk - j0);
    const std::vector<Mat> f = transformed_values(v, wo, j0, nj);   // H x [nj, D]
    for (int jj = 0; jj < nj; ++jj) {
      const int j = j0 + jj;
      for (int i = 0; i < Nq; ++i) {
        bool any = false;
        for (int h = 0; h < H && !any; ++h) any = w.at(b, h)[static_cast<size_t>(i) * Nk + j] != 0.f;
        if (!any) continue;                    // i does not see j: zeroing v_j leaves y_i as it is
        if (static_cast<int>(who.size()) == batch_rows) flush();
        auto row = sz.row(static_cast<Eigen::Index>(who.size()));
        row = s.row(i);
        for (int h = 0; h < H; ++h) {
          const float a = w.at(b, h)[static_cast<size_t>(i) * Nk + j];
          if (a != 0.f) row -= a * f[h].row(jj);
        }
        who.emplace_back(i, j);
      }
    }
  }
  flush();
  for (int i = 0; i < Nq; ++i) {
    float* r = c + static_cast<size_t>(i) * Nk;
    double sum = 0;
    for (int j = 0; j < Nk; ++j) sum += r[j];
    if (sum > 0)
      for (int j = 0; j < Nk; ++j) r[j] = static_cast<float>(r[j] / sum);
  }
  return out;
}

namespace {
// h + FC2(act(FC1(LN(h)))) run on copies of a block's layers (taken by value), so the block's own
// forward caches stay as its forward pass left them.
Mat residual_mlp_copy(LayerNorm ln, Linear fc1, Linear fc2, Activation act, const Mat& h) {
  Mat a = fc1.forward(ln.forward(h));
  if (act == Activation::Gelu) {
    Gelu g;
    a = g.forward(a);
  } else {
    Relu r;
    a = r.forward(a);
  }
  return h + fc2.forward(a);
}
}  // namespace

AttentionWeights value_zeroing(const EncoderBlock& block, const Mat& x, const AttentionWeights& w) {
  // x: [B*T, D]; w: [B, H, T, T]
  const MultiHeadAttention& mha = block.attn;
  const int B = w.B, H = w.H, T = w.Nq, D = block.opt.dim;
  if (mha.B_ != B || mha.Nq_ != T || mha.Nk_ != T || w.Nk != T || H != mha.opt.heads ||
      x.rows() != static_cast<Eigen::Index>(B) * T || x.cols() != D)
    throw std::invalid_argument("value_zeroing: x and the weights are not those of the block's last forward pass");
  if (block.opt.post_norm)   // its rest would be LN2(LN1(s) + MLP(LN1(s))), not the one below
    throw std::invalid_argument("value_zeroing: a pre-LN EncoderBlock (this one has post_norm)");
  // The block's second half h + FC2(act(FC1(LN2(h)))).
  const BlockRest rest = [&block](const Mat& h, Mat& y) {
    y = residual_mlp_copy(block.ln2, block.fc1, block.fc2, block.opt.activation, h);
  };
  const Mat s = x + mha.wo.apply(mha.ctx_);   // [B*T, D]: x + MHA(LN1(x)) from the cached context
  const auto vs = mha.v();                    // [B*T, D]
  AttentionWeights out;
  out.resize(B, 1, T, T);
  for (int b = 0; b < B; ++b) {
    const ValueRows v{vs.data() + static_cast<size_t>(b) * T * vs.outerStride(), static_cast<int>(vs.outerStride()), H, H, D / H};
    const AttentionWeights c = value_zeroing(s.middleRows(static_cast<Eigen::Index>(b) * T, T), w, b, v,
                                             {&mha.wo.weight.value, false}, rest);
    std::copy(c.data.begin(), c.data.end(), out.at(b, 0));
  }
  return out;
}

namespace {
// y = h + FC2(act(FC1(LN3(h)))): the decoder block's last sub-layer.
Mat decoder_mlp_half(const DecoderBlock& block, const Mat& h) {
  return residual_mlp_copy(block.ln3, block.fc1, block.fc2, block.opt.activation, h);
}
}  // namespace

DecoderMixing value_zeroing(const DecoderBlock& block, const Mat& y, const AttentionWeights& self_w,
                            const AttentionWeights& cross_w) {
  // y: [B*T, D]; self_w: [B, H, T, T]; cross_w: [B, H, T, S]
  const MultiHeadAttention &sa = block.self_attn, &ca = block.cross_attn;
  const int B = self_w.B, H = self_w.H, T = self_w.Nq, S = cross_w.Nk, D = block.opt.dim, Dh = D / H;
  if (sa.B_ != B || sa.Nq_ != T || sa.Nk_ != T || self_w.Nk != T || H != sa.opt.heads || ca.B_ != B ||
      ca.Nq_ != T || ca.Nk_ != S || cross_w.B != B || cross_w.H != ca.opt.heads || cross_w.Nq != T ||
      ca.opt.heads != H || y.rows() != static_cast<Eigen::Index>(B) * T || y.cols() != D)
    throw std::invalid_argument("value_zeroing: y and the weights are not those of the decoder block's last forward pass");
  const Mat h1 = y + sa.wo.apply(sa.ctx_);     // [B*T, D]: the residual sum after the self-attention
  const Mat h2 = h1 + ca.wo.apply(ca.ctx_);    // after the cross-attention
  const auto sv = sa.v(), ck = ca.k(), cv = ca.v();   // [B*T, D] self values; [B*S, D] cross keys / values
  const float scale = ca.opt.score == Score::ScaledDot ? 1.f / std::sqrt(static_cast<float>(Dh)) : 1.f;
  const BlockRest mlp = [&block](const Mat& h, Mat& out) { out = decoder_mlp_half(block, h); };
  DecoderMixing out;
  out.self.resize(B, 1, T, T);
  out.cross.resize(B, 1, T, S);
  for (int b = 0; b < B; ++b) {
    const int len = ca.mask_.key_lengths.empty() ? S : ca.mask_.key_lengths[b];
    // Self: the rest re-runs the cross-attention of the given rows over sequence b's source keys
    // (the cached memory projections), then the MLP half.
    const BlockRest cross_rest = [&](const Mat& h, Mat& o) {
      LayerNorm ln2 = block.ln2;
      const Mat q = ca.wq.apply(ln2.forward(h));   // [n, D]
      Mat ctx(h.rows(), D);
      KernelShape ks{1, H, static_cast<int>(h.rows()), S, Dh};
      ks.ldq = ks.ldo = D;
      ks.ldk = ks.ldv = static_cast<int>(ck.outerStride());
      KernelOptions ko;
      ko.scale = scale;
      ko.key_lengths = &len;
      attention_blocked(q.data(), ck.data() + static_cast<size_t>(b) * S * ck.outerStride(),
                        cv.data() + static_cast<size_t>(b) * S * cv.outerStride(), ctx.data(), ks, ko);
      o = decoder_mlp_half(block, h + ca.wo.apply(ctx));
    };
    const ValueRows vs{sv.data() + static_cast<size_t>(b) * T * sv.outerStride(), static_cast<int>(sv.outerStride()), H, H, Dh};
    const AttentionWeights cs = value_zeroing(h1.middleRows(static_cast<Eigen::Index>(b) * T, T), self_w, b, vs,
                                              {&sa.wo.weight.value, false}, cross_rest);
    std::copy(cs.data.begin(), cs.data.end(), out.self.at(b, 0));
    // Cross: source token j's value zeroed; the rest is the MLP half.
    const ValueRows vc{cv.data() + static_cast<size_t>(b) * S * cv.outerStride(), static_cast<int>(cv.outerStride()), H, H, Dh};
    const AttentionWeights cc = value_zeroing(h2.middleRows(static_cast<Eigen::Index>(b) * T, T), cross_w, b, vc,
                                              {&ca.wo.weight.value, false}, mlp);
    std::copy(cc.data.begin(), cc.data.end(), out.cross.at(b, 0));
  }
  return out;
}

}  // namespace attnviz::nn
