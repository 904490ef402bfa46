// LRP relevance (Chefer et al. 2021 rules) through Linear, residual adds, attention and the
// pre-LN encoder and decoder blocks; the rules are listed in include/attnviz/engine/relevance.hpp.
#include <attnviz/engine/relevance.hpp>

#include <cmath>
#include <stdexcept>

namespace attnviz::nn {

namespace {
// R / Z elementwise, 0 where Z is 0 (such an output passes no relevance).
template <class S>
MatOf<S> safe_ratio(const MatOf<S>& R, const MatOf<S>& Z) {
  return R.binaryExpr(Z, [](S r, S z) { return z != S(0) ? r / z : S(0); });
}
template <class S>
double total(const MatOf<S>& m) { return m.template cast<double>().sum(); }
}  // namespace

template <class S>
MatOf<S> lrp_linear(const MatOf<S>& x, const MatOf<S>& W, const MatOf<S>& R, double* absorbed) {
  using M = MatOf<S>;
  // x: [N, in], W: [in, out], R: [N, out]
  if (x.cols() != W.rows() || R.cols() != W.cols() || R.rows() != x.rows())
    throw std::invalid_argument("lrp_linear: x [N, in], W [in, out] and R [N, out] do not match");
  const M xp = x.cwiseMax(S(0)), xn = x.cwiseMin(S(0));   // [N, in]
  const M wp = W.cwiseMax(S(0)), wn = W.cwiseMin(S(0));   // [in, out]
  // z_ij = x_i^+ w_ij^+ + x_i^- w_ij^- >= 0; Z_j = sum_i z_ij.
  M Z = xp * wp;
  Z.noalias() += xn * wn;                                  // [N, out]
  const M Sr = safe_ratio<S>(R, Z);                        // [N, out]
  if (absorbed)
    for (Eigen::Index i = 0; i < Z.size(); ++i)
      if (Z.data()[i] == S(0)) *absorbed += static_cast<double>(R.data()[i]);
  // R_i = x_i^+ sum_j w_ij^+ S_j + x_i^- sum_j w_ij^- S_j
  M Rin = xp.cwiseProduct(Sr * wp.transpose());
  Rin += xn.cwiseProduct(Sr * wn.transpose());
  return Rin;                                              // [N, in]
}

template <class S>
void lrp_add(const MatOf<S>& a, const MatOf<S>& b, const MatOf<S>& R, MatOf<S>& Ra, MatOf<S>& Rb) {
  // a, b, R: [T, D]
  if (a.rows() != b.rows() || a.cols() != b.cols() || R.rows() != a.rows() || R.cols() != a.cols())
    throw std::invalid_argument("lrp_add: a, b and R must have one shape");
  const MatOf<S> Sr = safe_ratio<S>(R, a + b);
  Ra = a.cwiseProduct(Sr);
  Rb = b.cwiseProduct(Sr);
  // Eq. 8-9: each part's share is |sum R_a| / (|sum R_a| + |sum R_b|) of sum R, its entries keeping
  // their proportions.
  const double sa = total(Ra), sb = total(Rb), sr = total(R), den = std::abs(sa) + std::abs(sb);
  const double fa = den > 0 ? std::abs(sa) / den * sr : 0, fb = den > 0 ? std::abs(sb) / den * sr : 0;
  Ra *= static_cast<S>(sa != 0 ? fa / sa : 0.0);
  Rb *= static_cast<S>(sb != 0 ? fb / sb : 0.0);
}

template <class S>
void lrp_matmul(const MatOf<S>& X, const MatOf<S>& Y, const MatOf<S>& R, MatOf<S>& RX, MatOf<S>& RY) {
  // X: [n, k], Y: [k, m], R: [n, m]
  if (X.cols() != Y.rows() || R.rows() != X.rows() || R.cols() != Y.cols())
    throw std::invalid_argument("lrp_matmul: X [n, k], Y [k, m] and R [n, m] do not match");
  const MatOf<S> Sr = safe_ratio<S>(R, MatOf<S>(X * Y));   // [n, m]
  RX = X.cwiseProduct(Sr * Y.transpose()) * S(0.5);        // [n, k]
  RY = Y.cwiseProduct(X.transpose() * Sr) * S(0.5);        // [k, m]
}

template <class S>
void lrp_product(const MatOf<S>& X, const MatOf<S>& Y, const MatOf<S>& R, MatOf<S>& RX, MatOf<S>& RY) {
  if (X.rows() != Y.rows() || X.cols() != Y.cols() || R.rows() != X.rows() || R.cols() != X.cols())
    throw std::invalid_argument("lrp_product: X, Y and R must have one shape");
  const MatOf<S> C = X.cwiseProduct(Y);
  RX = C.cwiseProduct(safe_ratio<S>(R, C)) * S(0.5);   // = R / 2 where C != 0
  RY = RX;
}

template MatOf<float> lrp_linear<float>(const MatOf<float>&, const MatOf<float>&, const MatOf<float>&, double*);
template MatOf<double> lrp_linear<double>(const MatOf<double>&, const MatOf<double>&, const MatOf<double>&, double*);
template void lrp_add<float>(const MatOf<float>&, const MatOf<float>&, const MatOf<float>&, MatOf<float>&, MatOf<float>&);
template void lrp_add<double>(const MatOf<double>&, const MatOf<double>&, const MatOf<double>&, MatOf<double>&,
                              MatOf<double>&);
template void lrp_product<float>(const MatOf<float>&, const MatOf<float>&, const MatOf<float>&, MatOf<float>&,
                                 MatOf<float>&);
template void lrp_product<double>(const MatOf<double>&, const MatOf<double>&, const MatOf<double>&, MatOf<double>&,
                                  MatOf<double>&);
template void lrp_matmul<float>(const MatOf<float>&, const MatOf<float>&, const MatOf<float>&, MatOf<float>&,
                                MatOf<float>&);
template void lrp_matmul<double>(const MatOf<double>&, const MatOf<double>&, const MatOf<double>&, MatOf<double>&,
                                 MatOf<double>&);

AttentionRelevance lrp_attention(const MultiHeadAttention& mha, const AttentionWeights& w, const Mat& R, double* absorbed) {
  // w: [B, H, Nq, Nk]; R: [B*Nq, D]; mha.q(): [B*Nq, D], k(), v(): [B*Nk, D] (head h = columns h*Dh..)
  const int B = mha.B_, Nq = mha.Nq_, Nk = mha.Nk_, H = mha.opt.heads, D = mha.opt.dim, Dh = D / H;
  if (w.B != B || w.H != H || w.Nq != Nq || w.Nk != Nk || R.rows() != static_cast<Eigen::Index>(B) * Nq ||
      R.cols() != D || mha.q().rows() != R.rows())
    throw std::invalid_argument("lrp_attention: the weights or the relevance are not of the layer's last forward pass");
  AttentionRelevance out;
  out.attention.resize(B, H, Nq, Nk);
  // out = ctx W_O + b_O
  const Mat Rctx = lrp_linear(mha.wo.x_, mha.wo.weight.value, R, absorbed);   // [B*Nq, D]
  Mat Rq = Mat::Zero(mha.q().rows(), D), Rk = Mat::Zero(mha.k().rows(), D), Rv = Mat::Zero(mha.v().rows(), D);
  Mat RA, RV, RQ, RK;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const Eigen::Index rq = static_cast<Eigen::Index>(b) * Nq, rk = static_cast<Eigen::Index>(b) * Nk;
      const Mat A = ConstMatMap(w.at(b, h), Nq, Nk);               // [Nq, Nk]
      const Mat V = mha.v().block(rk, h * Dh, Nk, Dh);              // [Nk, Dh]
      // ctx_h = A V
      lrp_matmul(A, V, Rctx.block(rq, h * Dh, Nq, Dh), RA, RV);
      MatMap(out.attention.at(b, h), Nq, Nk) = RA;
      Rv.block(rk, h * Dh, Nk, Dh) = RV;
      // A = softmax(S) passes RA through; S = Q K^T (times the scale, which cancels)
      const Mat Q = mha.q().block(rq, h * Dh, Nq, Dh), K = mha.k().block(rk, h * Dh, Nk, Dh);
      lrp_matmul(Q, K.transpose(), RA, RQ, RK);
      Rq.block(rq, h * Dh, Nq, Dh) = RQ;
      Rk.block(rk, h * Dh, Nk, Dh) = RK.transpose();
    }
  // q = xq W_Q + b_Q, k = xkv W_K + b_K, v = xkv W_V + b_V
  out.query_input = lrp_linear(mha.xq(), mha.wq.weight.value, Rq, absorbed);
  out.kv_input = lrp_linear(mha.xkv(), mha.wk.weight.value, Rk, absorbed);
  out.kv_input += lrp_linear(mha.xkv(), mha.wv.weight.value, Rv, absorbed);
  return out;
}

Mat lrp_encoder_block(const EncoderBlock& block, const Mat& x, const AttentionWeights& w, const Mat& R,
                      AttentionWeights* attention, double* absorbed) {
  // x, R: [B*T, D]; w: [B, H, T, T]
  const MultiHeadAttention& mha = block.attn;
  const int B = mha.B_, T = mha.Nq_;
  if (!mha.self_ || x.rows() != static_cast<Eigen::Index>(B) * T || x.rows() != R.rows() || x.cols() != R.cols() ||
      block.fc2.x_.rows() != x.rows())
    throw std::invalid_argument("lrp_encoder_block: x and R are not of the block's last forward pass");
  if (block.drop1.mask_.size() || block.drop2.mask_.size())
    throw std::invalid_argument("lrp_encoder_block: the block's last forward used dropout (relevance needs evaluation)");
  // The forward's intermediate sums, rebuilt from the caches.
  const Mat a = mha.wo.apply(mha.ctx_);               // MHA(LN1(x)); post-norm: MHA(x)      [B*T, D]
  const Mat h = block.opt.post_norm ? block.fc1.x_ : Mat(x + a);   // post-norm: LN1(x + a)  [B*T, D]
  const Mat f = block.fc2.apply(block.fc2.x_);        // MLP(LN2(h)); post-norm: MLP(h)      [B*T, D]
  // y = h + f (post-norm: LN2(h + f), the LayerNorm passing relevance through)
  Mat Rh(x.rows(), x.cols()), Rf(x.rows(), x.cols()), Rx(x.rows(), x.cols()), Ra(x.rows(), x.cols());
  Mat r1, r2;
  for (int b = 0; b < B; ++b) {
    const Eigen::Index r0 = static_cast<Eigen::Index>(b) * T;
    lrp_add(h.middleRows(r0, T), f.middleRows(r0, T), R.middleRows(r0, T), r1, r2);
    Rh.middleRows(r0, T) = r1;
    Rf.middleRows(r0, T) = r2;
  }
  // f = FC2(act(FC1(LN2(h)))): the activation and LN2 pass relevance through.
  Rh += lrp_linear(block.fc1.x_, block.fc1.weight.value,
                   lrp_linear(block.fc2.x_, block.fc2.weight.value, Rf, absorbed), absorbed);
  // h = x + a (post-norm: LN1(x + a))
  for (int b = 0; b < B; ++b) {
    const Eigen::Index r0 = static_cast<Eigen::Index>(b) * T;
    lrp_add(x.middleRows(r0, T), a.middleRows(r0, T), Rh.middleRows(r0, T), r1, r2);
    Rx.middleRows(r0, T) = r1;
    Ra.middleRows(r0, T) = r2;
  }
  // a = MHA(LN1(x)): LN1 passes relevance through; q, k and v all read LN1(x) (post-norm: x).
  AttentionRelevance ar = lrp_attention(mha, w, Ra, absorbed);
  Rx += ar.query_input;
  Rx += ar.kv_input;
  if (attention) *attention = std::move(ar.attention);
  return Rx;
}

namespace {
// y = a + b split sequence by sequence (T rows each): Ra, Rb [B*T, D].
void lrp_add_rows(const Mat& a, const Mat& b, const Mat& R, int B, int T, Mat& Ra, Mat& Rb) {
  Ra.resize(a.rows(), a.cols());
  Rb.resize(a.rows(), a.cols());
  Mat r1, r2;
  for (int s = 0; s < B; ++s) {
    const Eigen::Index r0 = static_cast<Eigen::Index>(s) * T;
    lrp_add(a.middleRows(r0, T), b.middleRows(r0, T), R.middleRows(r0, T), r1, r2);
    Ra.middleRows(r0, T) = r1;
    Rb.middleRows(r0, T) = r2;
  }
}
}  // namespace

DecoderRelevance lrp_decoder_block(const DecoderBlock& block, const Mat& y, const AttentionWeights& ws,
                                   const AttentionWeights& wc, const Mat& R) {
  // y, R: [B*T, D]; ws: [B, H, T, T]; wc: [B, H, T, S]
  const MultiHeadAttention &sa = block.self_attn, &ca = block.cross_attn;
  const int B = sa.B_, T = sa.Nq_;
  if (!sa.self_ || ca.self_ || ca.B_ != B || ca.Nq_ != T || y.rows() != static_cast<Eigen::Index>(B) * T ||
      y.rows() != R.rows() || y.cols() != R.cols() || block.fc2.x_.rows() != y.rows())
    throw std::invalid_argument("lrp_decoder_block: y and R are not of the block's last forward pass");
  if (block.drop1.mask_.size() || block.drop2.mask_.size() || block.drop3.mask_.size())
    throw std::invalid_argument("lrp_decoder_block: the block's last forward used dropout (relevance needs evaluation)");
  // The forward's intermediate sums, rebuilt from the caches.
  const Mat a = sa.wo.apply(sa.ctx_);            // Self(LN1(y))            [B*T, D]
  const Mat h1 = y + a;
  const Mat c = ca.wo.apply(ca.ctx_);            // Cross(LN2(h1), memory)  [B*T, D]
  const Mat h2 = h1 + c;
  const Mat f = block.fc2.apply(block.fc2.x_);   // MLP(LN3(h2))            [B*T, D]
  Mat Rh2, Rf, Rh1, Rc, Ry, Ra;
  // out = h2 + f; f = FC2(act(FC1(LN3(h2)))), the activation and LN3 passing relevance through.
  lrp_add_rows(h2, f, R, B, T, Rh2, Rf);
  Rh2 += lrp_linear(block.fc1.x_, block.fc1.weight.value, lrp_linear(block.fc2.x_, block.fc2.weight.value, Rf));
  // h2 = h1 + c; c's query input is LN2(h1) (passed through to h1), its keys and values the memory.
  lrp_add_rows(h1, c, Rh2, B, T, Rh1, Rc);
  DecoderRelevance out;
  AttentionRelevance cr = lrp_attention(ca, wc, Rc);
  Rh1 += cr.query_input;
  out.memory = std::move(cr.kv_input);
  out.cross = std::move(cr.attention);
  // h1 = y + a; a = Self(LN1(y)): q, k and v all read LN1(y).
  lrp_add_rows(y, a, Rh1, B, T, Ry, Ra);
  AttentionRelevance sr = lrp_attention(sa, ws, Ra);
  Ry += sr.query_input;
  Ry += sr.kv_input;
  out.target_input = std::move(Ry);
  out.self = std::move(sr.attention);
  return out;
}

}  // namespace attnviz::nn
