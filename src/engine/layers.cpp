// Basic layers: Linear, LayerNorm, GELU, ReLU, Tanh, Embedding, positions, patches, Dropout.
#include <attnviz/engine/layers.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/optim.hpp>

#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/parallel.hpp"

namespace attnviz::nn {

using detail::parallel_rows;

// ---------------------------------------------------------------------------------------- Linear
Linear::Linear(int in, int out, bool has_bias) : weight(in, out), bias(1, out, false), has_bias(has_bias) {}

void Linear::init(Rng& rng, Init kind) {
  switch (kind) {
    case Init::XavierUniform: xavier_uniform(weight.value, rng); break;
    case Init::KaimingUniform: kaiming_uniform(weight.value, rng); break;
    case Init::KaimingNormal: kaiming_normal(weight.value, rng); break;
    case Init::Normal002: normal_init(weight.value, rng, 0.02f); break;
    case Init::Zeros: weight.value.setZero(); break;
  }
  bias.value.setZero();
}

void Linear::collect(ParamSet& set, const std::string& prefix) {
  set.add(weight, scoped(prefix, "weight"));
  if (has_bias) set.add(bias, scoped(prefix, "bias"));
}

Mat Linear::apply(const Mat& x) const {
  // x: [N, in] -> y: [N, out]
  if (x.cols() != weight.value.rows())
    throw std::invalid_argument("Linear: input has " + std::to_string(x.cols()) + " columns, expected " +
                                std::to_string(weight.value.rows()));
  Mat y;
  if (has_bias) {   // y starts as the bias rows and the GEMM adds x W into it (no zero fill, no second pass)
    y.resize(x.rows(), weight.value.cols());
    y.rowwise() = bias.value.row(0);
    matmul(x, weight.value, y, true);
  } else {
    matmul(x, weight.value, y);
  }
  return y;
}

Mat Linear::forward(const Mat& x) {
  x_ = x;
  return apply(x);
}

Mat Linear::forward(Mat&& x) {
  x_ = std::move(x);
  return apply(x_);
}

Mat Linear::backward(const Mat& dy) { return backward(x_, dy); }

Mat Linear::backward(const Mat& x, const Mat& dy) {
  // dW += x^T dy; db += sum_rows dy; dx = dy W^T
  matmul_tn(x, dy, weight.grad, true);
  if (has_bias) bias.grad.row(0) += dy.colwise().sum();
  Mat dx;
  matmul_nt(dy, weight.value, dx);
  return dx;
}

// ------------------------------------------------------------------------------------- LayerNorm
LayerNorm::LayerNorm(int dim, float eps) : gamma(1, dim, false), beta(1, dim, false), eps(eps) {
  gamma.value.setOnes();
}

void LayerNorm::collect(ParamSet& set, const std::string& prefix) {
  set.add(gamma, scoped(prefix, "weight"));
  set.add(beta, scoped(prefix, "bias"));
}

Mat LayerNorm::forward(const Mat& x) {
  // x: [N, D]
  const Eigen::Index N = x.rows(), D = x.cols();
  xhat_.resize(N, D);
  rstd_.resize(N);
  Mat y(N, D);
  parallel_rows(N, 8.0 * N * D, [&](Eigen::Index r0, Eigen::Index r1) {
    for (Eigen::Index i = r0; i < r1; ++i) {
      float mean = x.row(i).mean();
      auto c = (x.row(i).array() - mean);
      float var = c.square().mean();
      float rs = 1.f / std::sqrt(var + eps);
      rstd_(i) = rs;
      xhat_.row(i) = c * rs;
      y.row(i) = xhat_.row(i).cwiseProduct(gamma.value.row(0)) + beta.value.row(0);
    }
  });
  return y;
}

Mat LayerNorm::backward(const Mat& dy) {
  // dgamma += sum dy*xhat; dbeta += sum dy;
  // dx = rstd * (g - mean(g) - xhat * mean(g*xhat)), g = dy * gamma
  const Eigen::Index N = dy.rows(), D = dy.cols();
  {   // row by row (contiguous; a column-wise sum of the row-major matrices walks with stride D)
    RowVec dg = RowVec::Zero(D), db = RowVec::Zero(D);
    for (Eigen::Index i = 0; i < N; ++i) {
      dg += dy.row(i).cwiseProduct(xhat_.row(i));
      db += dy.row(i);
    }
    gamma.grad.row(0) += dg;
    beta.grad.row(0) += db;
  }
  Mat dx(N, D);
  parallel_rows(N, 8.0 * N * D, [&](Eigen::Index r0, Eigen::Index r1) {
    RowVec g(D);
    for (Eigen::Index i = r0; i < r1; ++i) {
      g = dy.row(i).cwiseProduct(gamma.value.row(0));
      float mg = g.mean();
      float mgx = g.cwiseProduct(xhat_.row(i)).mean();
      dx.row(i) = rstd_(i) * (g.array() - mg - xhat_.row(i).array() * mgx).matrix();
    }
  });
  return dx;
}

// ------------------------------------------------------------------------------------ activations
Mat Gelu::forward(const Mat& x) { return forward(Mat(x)); }

Mat Gelu::forward(Mat&& x) {
  // y = x Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)), in place in x's buffer; the derivative
  // Phi(x) + x phi(x) comes out of the same pass (one exp for both) and is kept for backward.
  Mat y = std::move(x);
  dydx_.resize(y.rows(), y.cols());
  const Eigen::Index C = y.cols();
  parallel_rows(y.rows(), 10.0 * y.size(), [&](Eigen::Index r0, Eigen::Index r1) {
    gelu_erf(y.data() + r0 * C, y.data() + r0 * C, dydx_.data() + r0 * C, (r1 - r0) * C);
  });
  return y;
}

Mat Gelu::backward(const Mat& dy) {
  if (dy.rows() != dydx_.rows() || dy.cols() != dydx_.cols())
    throw std::invalid_argument("Gelu::backward: dy does not match the last forward's shape");
  return dy.cwiseProduct(dydx_);
}

Mat Relu::forward(const Mat& x) {
  y_ = x.cwiseMax(0.f);
  return y_;
}

Mat Relu::backward(const Mat& dy) { return (y_.array() > 0.f).select(dy, 0.f); }

Mat Tanh::forward(const Mat& x) {
  y_ = x.array().tanh().matrix();
  return y_;
}

Mat Tanh::backward(const Mat& dy) { return (dy.array() * (1.f - y_.array().square())).matrix(); }

// ------------------------------------------------------------------------------------- Embedding
Embedding::Embedding(int vocab, int dim, int padding_idx) : weight(vocab, dim), padding_idx(padding_idx) {}

void Embedding::init(Rng& rng, float stddev) {
  normal_init(weight.value, rng, stddev);
  if (padding_idx >= 0 && padding_idx < weight.value.rows()) weight.value.row(padding_idx).setZero();
}

void Embedding::collect(ParamSet& set, const std::string& prefix) { set.add(weight, scoped(prefix, "weight")); }

Mat Embedding::forward(const std::vector<int>& ids) {
  // ids: [N] -> [N, D]
  const int V = static_cast<int>(weight.value.rows());
  Mat y(static_cast<Eigen::Index>(ids.size()), weight.value.cols());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= V)
      throw std::out_of_range("Embedding: id " + std::to_string(ids[i]) + " outside [0, " + std::to_string(V) + ")");
    y.row(static_cast<Eigen::Index>(i)) = weight.value.row(ids[i]);
  }
  ids_ = ids;
  return y;
}

void Embedding::backward(const Mat& dy) {
  // Sequential scatter-add: rows may repeat, and the order is fixed for determinism.
  for (size_t i = 0; i < ids_.size(); ++i)
    if (ids_[i] != padding_idx) weight.grad.row(ids_[i]) += dy.row(static_cast<Eigen::Index>(i));
}

// --------------------------------------------------------------------------- PositionalEmbedding
PositionalEmbedding::PositionalEmbedding(int max_len, int dim) : weight(max_len, dim, false) {}

void PositionalEmbedding::init(Rng& rng, float stddev) { normal_init(weight.value, rng, stddev); }

void PositionalEmbedding::collect(ParamSet& set, const std::string& prefix) {
  set.add(weight, scoped(prefix, "weight"));
}

Mat PositionalEmbedding::forward(const Mat& x, int B, int T) {
  // x: [B*T, D]
  if (T > weight.value.rows())
    throw std::invalid_argument("PositionalEmbedding: length " + std::to_string(T) + " exceeds max_len " +
                                std::to_string(weight.value.rows()));
  B_ = B;
  T_ = T;
  Mat y = x;
  for (int b = 0; b < B; ++b) y.middleRows(static_cast<Eigen::Index>(b) * T, T) += weight.value.topRows(T);
  return y;
}

Mat PositionalEmbedding::backward(const Mat& dy) {
  for (int b = 0; b < B_; ++b) weight.grad.topRows(T_) += dy.middleRows(static_cast<Eigen::Index>(b) * T_, T_);
  return dy;
}

// -------------------------------------------------------------------------------- PatchEmbedding
PatchEmbedding::PatchEmbedding(const PatchEmbeddingOptions& o) : opt(o) {
  if (o.patch <= 0 || o.height % o.patch || o.width % o.patch)
    throw std::invalid_argument("PatchEmbedding: image size must be a multiple of the patch size");
  proj = Linear(o.patch * o.patch * o.channels, o.dim);
  cls = Param(1, o.dim, false);
  pos = Param(tokens(), o.dim, false);
}

int PatchEmbedding::patches() const { return (opt.height / opt.patch) * (opt.width / opt.patch); }
int PatchEmbedding::tokens() const { return patches() + (opt.cls_token ? 1 : 0); }

void PatchEmbedding::init(Rng& rng) {
  proj.init(rng, Init::XavierUniform);
  normal_init(cls.value, rng, 0.02f);
  normal_init(pos.value, rng, 0.02f);
}

void PatchEmbedding::collect(ParamSet& set, const std::string& prefix) {
  proj.collect(set, scoped(prefix, "proj"));
  if (opt.cls_token) set.add(cls, scoped(prefix, "cls"));
  if (opt.positions) set.add(pos, scoped(prefix, "pos"));
}

Mat PatchEmbedding::extract_patches(const Mat& images, const PatchEmbeddingOptions& o) {
  // images: [B, C*H*W] -> [B*P, p*p*C]
  const int ps = o.patch, gw = o.width / ps, gh = o.height / ps, P = gw * gh;
  const int F = ps * ps * o.channels;
  if (images.cols() != static_cast<Eigen::Index>(o.channels) * o.height * o.width)
    throw std::invalid_argument("PatchEmbedding: images have " + std::to_string(images.cols()) +
                                " values each, expected " + std::to_string(o.channels * o.height * o.width));
  const Eigen::Index B = images.rows();
  Mat out(B * P, F);
  for (Eigen::Index b = 0; b < B; ++b)
    for (int pr = 0; pr < gh; ++pr)
      for (int pc = 0; pc < gw; ++pc) {
        float* dst = out.row(b * P + pr * gw + pc).data();
        for (int c = 0; c < o.channels; ++c)
          for (int i = 0; i < ps; ++i)
            for (int j = 0; j < ps; ++j)
              *dst++ = images(b, (static_cast<Eigen::Index>(c) * o.height + pr * ps + i) * o.width + pc * ps + j);
      }
  return out;
}

Mat PatchEmbedding::forward(const Mat& images) {
  // images: [B, C*H*W] -> [B*T, D]
  const Eigen::Index B = images.rows();
  const int P = patches(), T = tokens(), off = opt.cls_token ? 1 : 0;
  B_ = static_cast<int>(B);
  Mat e = proj.forward(extract_patches(images, opt));   // [B*P, D]
  Mat y(B * T, opt.dim);
  for (Eigen::Index b = 0; b < B; ++b) {
    if (opt.cls_token) y.row(b * T) = cls.value.row(0);
    y.middleRows(b * T + off, P) = e.middleRows(b * P, P);
    if (opt.positions) y.middleRows(b * T, T) += pos.value;
  }
  return y;
}

void PatchEmbedding::backward(const Mat& dy) {
  const int P = patches(), T = tokens(), off = opt.cls_token ? 1 : 0;
  Mat de(static_cast<Eigen::Index>(B_) * P, opt.dim);
  for (int b = 0; b < B_; ++b) {
    const Eigen::Index r = static_cast<Eigen::Index>(b) * T;
    if (opt.positions) pos.grad += dy.middleRows(r, T);
    if (opt.cls_token) cls.grad.row(0) += dy.row(r);
    de.middleRows(static_cast<Eigen::Index>(b) * P, P) = dy.middleRows(r + off, P);
  }
  // Parameter gradients only: dW += patches^T de, db += sum de.
  matmul_tn(proj.x_, de, proj.weight.grad, true);
  proj.bias.grad.row(0) += de.colwise().sum();
}

// --------------------------------------------------------------------------------------- Dropout
Mat Dropout::forward(const Mat& x, Rng& rng, bool training) {
  if (!training || p <= 0.f) {
    mask_.resize(0, 0);
    return x;
  }
  const float keep = 1.f - p, scale = 1.f / keep;
  mask_.resize(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < mask_.size(); ++i) mask_.data()[i] = rng.uniform() < keep ? scale : 0.f;
  return x.cwiseProduct(mask_);
}

Mat Dropout::backward(const Mat& dy) {
  if (mask_.size() == 0) return dy;
  return dy.cwiseProduct(mask_);
}

}  // namespace attnviz::nn
