// Pre-LN transformer encoder/decoder blocks, the GRU cell and the bidirectional GRU encoder.
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/optim.hpp>

#include <cmath>
#include <stdexcept>

namespace attnviz::nn {

namespace {
Mat act_forward(Activation a, Gelu& g, Relu& r, Mat&& x) {
  return a == Activation::Gelu ? g.forward(std::move(x)) : r.forward(x);
}
Mat act_backward(Activation a, Gelu& g, Relu& r, const Mat& dy) { return a == Activation::Gelu ? g.backward(dy) : r.backward(dy); }
Mat drop_forward(Dropout& d, const Mat& x, Rng* rng) {
  if (rng) return d.forward(x, *rng, true);
  d.mask_.resize(0, 0);
  return x;
}
}  // namespace

// -------------------------------------------------------------------------------- EncoderBlock
EncoderBlock::EncoderBlock(const EncoderBlockOptions& o)
    : opt(o), ln1(o.dim), ln2(o.dim),
      attn(MultiHeadAttentionOptions{.dim = o.dim, .heads = o.heads, .score = o.score, .dense_max_keys = o.dense_max_keys}),
      fc1(o.dim, o.mlp_hidden), fc2(o.mlp_hidden, o.dim), drop1(o.dropout), drop2(o.dropout) {}

void EncoderBlock::init(Rng& rng) {
  attn.init(rng);
  fc1.init(rng, opt.activation == Activation::Relu ? Init::KaimingUniform : Init::XavierUniform);
  fc2.init(rng);
}

void EncoderBlock::collect(ParamSet& set, const std::string& prefix) {
  ln1.collect(set, scoped(prefix, "ln1"));
  attn.collect(set, scoped(prefix, "attn"));
  ln2.collect(set, scoped(prefix, "ln2"));
  fc1.collect(set, scoped(prefix, "fc1"));
  fc2.collect(set, scoped(prefix, "fc2"));
}

Mat EncoderBlock::forward(const Mat& x, int B, int T, const AttnMask& mask, AttentionWeights* weights,
                          Rng* dropout_rng) {
  // x: [B*T, D]
  if (opt.post_norm) {
    Mat h = ln1.forward(x + drop_forward(drop1, attn.forward(x, B, T, mask, weights), dropout_rng));
    Mat f = fc2.forward(act_forward(opt.activation, gelu, relu, fc1.forward(h)));
    return ln2.forward(h + drop_forward(drop2, f, dropout_rng));
  }
  Mat h = x + drop_forward(drop1, attn.forward(ln1.forward(x), B, T, mask, weights), dropout_rng);
  Mat f = fc2.forward(act_forward(opt.activation, gelu, relu, fc1.forward(ln2.forward(h))));
  return h + drop_forward(drop2, f, dropout_rng);
}

Mat EncoderBlock::backward(const Mat& dy, AttentionWeights* dweights) {
  if (opt.post_norm) {
    // y = LN2(h + MLP(h)); h = LN1(x + MHA(x))
    const Mat ds2 = ln2.backward(dy);
    Mat dh = ds2;
    dh += fc1.backward(act_backward(opt.activation, gelu, relu, fc2.backward(drop2.backward(ds2))));
    const Mat ds1 = ln1.backward(dh);
    Mat dx = ds1;
    dx += attn.backward(drop1.backward(ds1), dweights);
    return dx;
  }
  // y = h + MLP(LN2(h))
  Mat dh = dy;
  Mat dm = fc1.backward(act_backward(opt.activation, gelu, relu, fc2.backward(drop2.backward(dy))));
  dh += ln2.backward(dm);
  // h = x + MHA(LN1(x))
  Mat dx = dh;
  dx += ln1.backward(attn.backward(drop1.backward(dh), dweights));
  return dx;
}

namespace {
// Rows b*T + row of m ([B*T, cols]) -> [B, cols].
Mat rows_of(const Mat& m, int B, int T, int row) {
  Mat out(B, m.cols());
  for (int b = 0; b < B; ++b) out.row(b) = m.row(static_cast<Eigen::Index>(b) * T + row);
  return out;
}
}  // namespace

Mat EncoderBlock::forward_row(const Mat& x, int B, int T, int row, const AttnMask& mask, Rng* dropout_rng) {
  // x: [B*T, D] -> y [B, D] at rows b*T + row
  if (x.rows() != static_cast<Eigen::Index>(B) * T || row < 0 || row >= T)
    throw std::invalid_argument("EncoderBlock::forward_row: x must be [B*T, D] and 0 <= row < T");
  if (opt.post_norm) throw std::logic_error("EncoderBlock::forward_row: a pre-LN block only (post_norm is set)");
  row_ = row;
  row_B_ = B;
  row_T_ = T;
  const Mat a = ln1.forward(x);                                   // keys and values: all T rows
  Mat h = rows_of(x, B, T, row);                                  // [B, D]
  h += drop_forward(drop1, attn.forward(rows_of(a, B, T, row), a, B, 1, T, mask, nullptr), dropout_rng);
  Mat f = fc2.forward(act_forward(opt.activation, gelu, relu, fc1.forward(ln2.forward(h))));
  return h + drop_forward(drop2, f, dropout_rng);
}

Mat EncoderBlock::backward_row(const Mat& dy) {
  // y = h + MLP(LN2(h)), h = x_row + MHA(LN1(x)_row, LN1(x)) -- dy, dh: [B, D]
  if (row_ < 0 || dy.rows() != row_B_) throw std::logic_error("EncoderBlock::backward_row without forward_row");
  const int B = row_B_, T = row_T_;
  Mat dh = dy;
  dh += ln2.backward(fc1.backward(act_backward(opt.activation, gelu, relu, fc2.backward(drop2.backward(dy)))));
  Mat da;                                                         // d LN1(x) through keys and values [B*T, D]
  const Mat daq = attn.backward(drop1.backward(dh), da, nullptr);  // through the query rows [B, D]
  for (int b = 0; b < B; ++b) da.row(static_cast<Eigen::Index>(b) * T + row_) += daq.row(b);
  Mat dx = ln1.backward(da);
  for (int b = 0; b < B; ++b) dx.row(static_cast<Eigen::Index>(b) * T + row_) += dh.row(b);
  return dx;
}

// -------------------------------------------------------------------------------- DecoderBlock
DecoderBlock::DecoderBlock(const DecoderBlockOptions& o)
    : opt(o), ln1(o.dim), ln2(o.dim), ln3(o.dim),
      self_attn(MultiHeadAttentionOptions{.dim = o.dim, .heads = o.heads, .score = o.score}),
      cross_attn(MultiHeadAttentionOptions{.dim = o.dim, .heads = o.heads, .kv_dim = o.memory_dim, .score = o.score}),
      fc1(o.dim, o.mlp_hidden), fc2(o.mlp_hidden, o.dim), drop1(o.dropout), drop2(o.dropout), drop3(o.dropout) {}

void DecoderBlock::init(Rng& rng) {
  self_attn.init(rng);
  cross_attn.init(rng);
  fc1.init(rng, opt.activation == Activation::Relu ? Init::KaimingUniform : Init::XavierUniform);
  fc2.init(rng);
}

void DecoderBlock::collect(ParamSet& set, const std::string& prefix) {
  ln1.collect(set, scoped(prefix, "ln1"));
  self_attn.collect(set, scoped(prefix, "self"));
  ln2.collect(set, scoped(prefix, "ln2"));
  cross_attn.collect(set, scoped(prefix, "cross"));
  ln3.collect(set, scoped(prefix, "ln3"));
  fc1.collect(set, scoped(prefix, "fc1"));
  fc2.collect(set, scoped(prefix, "fc2"));
}

Mat DecoderBlock::forward(const Mat& y, const Mat& memory, int B, int T, int S, const AttnMask& self_mask,
                          const AttnMask& cross_mask, DecoderWeights weights, Rng* dropout_rng) {
  // y: [B*T, D], memory: [B*S, memory_dim]
  AttnMask causal = self_mask;
  causal.causal = true;
  Mat h1 = y + drop_forward(drop1, self_attn.forward(ln1.forward(y), B, T, causal, weights.self), dropout_rng);
  Mat h2 = h1 + drop_forward(drop2, cross_attn.forward(ln2.forward(h1), memory, B, T, S, cross_mask, weights.cross),
                             dropout_rng);
  Mat f = fc2.forward(act_forward(opt.activation, gelu, relu, fc1.forward(ln3.forward(h2))));
  return h2 + drop_forward(drop3, f, dropout_rng);
}

Mat DecoderBlock::backward(const Mat& dout, Mat& dmemory, DecoderWeights dweights) {
  // out = h2 + MLP(LN3(h2))
  Mat dh2 = dout;
  dh2 += ln3.backward(fc1.backward(act_backward(opt.activation, gelu, relu, fc2.backward(drop3.backward(dout)))));
  // h2 = h1 + Cross(LN2(h1), memory)
  Mat dh1 = dh2;
  dh1 += ln2.backward(cross_attn.backward(drop2.backward(dh2), dmemory, dweights.cross));
  // h1 = y + Self(LN1(y))
  Mat dy = dh1;
  dy += ln1.backward(self_attn.backward(drop1.backward(dh1), dweights.self));
  return dy;
}

// ------------------------------------------------------------------------------------- GruCell
GruCell::GruCell(int input, int hidden)
    : wx(input, 3 * hidden), wh(hidden, 3 * hidden), bx(1, 3 * hidden, false), bh(1, 3 * hidden, false) {}

void GruCell::init(Rng& rng) {
  const float bound = 1.f / std::sqrt(static_cast<float>(hidden()));
  uniform_init(wx.value, rng, bound);
  uniform_init(wh.value, rng, bound);
  uniform_init(bx.value, rng, bound);
  uniform_init(bh.value, rng, bound);
}

void GruCell::collect(ParamSet& set, const std::string& prefix) {
  set.add(wx, scoped(prefix, "wx"));
  set.add(wh, scoped(prefix, "wh"));
  set.add(bx, scoped(prefix, "bx"));
  set.add(bh, scoped(prefix, "bh"));
}

Mat GruCell::project_inputs(const Mat& x) const {
  // x: [N, In] -> [N, 3H]
  Mat g;
  matmul(x, wx.value, g);
  g.rowwise() += bx.value.row(0);
  return g;
}

Mat GruCell::step(const Mat& gx, const Mat& h, Cache* cache) const {
  // gx: [B, 3H], h: [B, H] -> h' [B, H]
  const Eigen::Index H = hidden();
  Mat gh;
  matmul(h, wh.value, gh);
  gh.rowwise() += bh.value.row(0);
  auto sigmoid = [](auto a) { return 1.f / (1.f + (-a).exp()); };
  Mat r = sigmoid((gx.leftCols(H) + gh.leftCols(H)).array()).matrix();
  Mat z = sigmoid((gx.middleCols(H, H) + gh.middleCols(H, H)).array()).matrix();
  Mat hn = gh.rightCols(H);
  Mat n = (gx.rightCols(H).array() + r.array() * hn.array()).tanh().matrix();
  Mat hnew = ((1.f - z.array()) * n.array() + z.array() * h.array()).matrix();
  if (cache) {
    cache->h = h;
    cache->r = std::move(r);
    cache->z = std::move(z);
    cache->n = std::move(n);
    cache->hn = std::move(hn);
  }
  return hnew;
}

Mat GruCell::backward_step(const Cache& c, const Mat& dh, Mat& dgx) {
  // h' = (1 - z) n + z h
  const Eigen::Index B = dh.rows(), H = hidden();
  Mat dn = (dh.array() * (1.f - c.z.array())).matrix();
  Mat dz = (dh.array() * (c.h.array() - c.n.array())).matrix();
  Mat dhprev = (dh.array() * c.z.array()).matrix();
  // n = tanh(gx_n + r * hn)
  Mat dan = (dn.array() * (1.f - c.n.array().square())).matrix();
  Mat dr = (dan.array() * c.hn.array()).matrix();
  // r, z = sigmoid(...)
  dgx.resize(B, 3 * H);
  dgx.leftCols(H) = (dr.array() * c.r.array() * (1.f - c.r.array())).matrix();
  dgx.middleCols(H, H) = (dz.array() * c.z.array() * (1.f - c.z.array())).matrix();
  dgx.rightCols(H) = dan;
  Mat dgh = dgx;
  dgh.rightCols(H) = (dan.array() * c.r.array()).matrix();
  // gh = h Wh + bh
  matmul_tn(c.h, dgh, wh.grad, true);
  bh.grad.row(0) += dgh.colwise().sum();
  matmul_nt(dgh, wh.value, dhprev, true);
  return dhprev;
}

Mat GruCell::backward_inputs(const Mat& x, const Mat& dgx) {
  // gx = x Wx + bx
  matmul_tn(x, dgx, wx.grad, true);
  bx.grad.row(0) += dgx.colwise().sum();
  Mat dx;
  matmul_nt(dgx, wx.value, dx);
  return dx;
}

// -------------------------------------------------------------------------------- BiGruEncoder
BiGruEncoder::BiGruEncoder(int input, int hidden) : fwd(input, hidden), bwd(input, hidden) {}

void BiGruEncoder::init(Rng& rng) {
  fwd.init(rng);
  bwd.init(rng);
}

void BiGruEncoder::collect(ParamSet& set, const std::string& prefix) {
  fwd.collect(set, scoped(prefix, "fwd"));
  bwd.collect(set, scoped(prefix, "bwd"));
}

namespace {
Mat gather_step(const Mat& m, int B, int T, int t) {   // rows b*T+t -> [B, cols]
  Mat out(B, m.cols());
  for (int b = 0; b < B; ++b) out.row(b) = m.row(static_cast<Eigen::Index>(b) * T + t);
  return out;
}
}  // namespace

Mat BiGruEncoder::forward(const Mat& x, int B, int T, const std::vector<int>& lengths) {
  // x: [B*T, In] -> [B*T, 2H]
  if (x.rows() != static_cast<Eigen::Index>(B) * T) throw std::invalid_argument("BiGruEncoder: x must be [B*T, In]");
  if (!lengths.empty() && static_cast<int>(lengths.size()) != B)
    throw std::invalid_argument("BiGruEncoder: one length per sequence expected");
  const int H = hidden();
  B_ = B;
  T_ = T;
  lengths_ = lengths.empty() ? std::vector<int>(B, T) : lengths;
  x_ = x;
  gxf_ = fwd.project_inputs(x);
  gxb_ = bwd.project_inputs(x);
  cf_.assign(T, {});
  cb_.assign(T, {});
  Mat out = Mat::Zero(static_cast<Eigen::Index>(B) * T, 2 * H);
  Mat h = Mat::Zero(B, H);
  for (int t = 0; t < T; ++t) {   // forward direction; steps past a sequence's end keep its state
    Mat hn = fwd.step(gather_step(gxf_, B, T, t), h, &cf_[t]);
    for (int b = 0; b < B; ++b)
      if (t < lengths_[b]) {
        h.row(b) = hn.row(b);
        out.row(static_cast<Eigen::Index>(b) * T + t).head(H) = hn.row(b);
      }
  }
  final_.resize(B, 2 * H);
  final_.leftCols(H) = h;
  h.setZero();
  for (int t = T - 1; t >= 0; --t) {   // backward direction starts at each sequence's last token
    Mat hn = bwd.step(gather_step(gxb_, B, T, t), h, &cb_[t]);
    for (int b = 0; b < B; ++b)
      if (t < lengths_[b]) {
        h.row(b) = hn.row(b);
        out.row(static_cast<Eigen::Index>(b) * T + t).tail(H) = hn.row(b);
      }
  }
  final_.rightCols(H) = h;
  return out;
}

Mat BiGruEncoder::backward(const Mat& dout, const Mat& dfinal) {
  const int B = B_, T = T_, H = hidden();
  Mat dgxf(static_cast<Eigen::Index>(B) * T, 3 * H), dgxb(static_cast<Eigen::Index>(B) * T, 3 * H), dgx;
  // Forward direction in reverse time.
  Mat dh = dfinal.size() ? Mat(dfinal.leftCols(H)) : Mat::Zero(B, H);
  for (int t = T - 1; t >= 0; --t) {
    Mat dnew = Mat::Zero(B, H);
    for (int b = 0; b < B; ++b)
      if (t < lengths_[b]) {
        dh.row(b) += dout.row(static_cast<Eigen::Index>(b) * T + t).head(H);
        dnew.row(b) = dh.row(b);
        dh.row(b).setZero();
      }
    Mat dprev = fwd.backward_step(cf_[t], dnew, dgx);
    dh += dprev;
    for (int b = 0; b < B; ++b) dgxf.row(static_cast<Eigen::Index>(b) * T + t) = dgx.row(b);
  }
  // Backward direction, undone from t = 0 upwards.
  dh = dfinal.size() ? Mat(dfinal.rightCols(H)) : Mat::Zero(B, H);
  for (int t = 0; t < T; ++t) {
    Mat dnew = Mat::Zero(B, H);
    for (int b = 0; b < B; ++b)
      if (t < lengths_[b]) {
        dh.row(b) += dout.row(static_cast<Eigen::Index>(b) * T + t).tail(H);
        dnew.row(b) = dh.row(b);
        dh.row(b).setZero();
      }
    Mat dprev = bwd.backward_step(cb_[t], dnew, dgx);
    dh += dprev;
    for (int b = 0; b < B; ++b) dgxb.row(static_cast<Eigen::Index>(b) * T + t) = dgx.row(b);
  }
  Mat dx = fwd.backward_inputs(x_, dgxf);
  dx += bwd.backward_inputs(x_, dgxb);
  return dx;
}

}  // namespace attnviz::nn
