// Adam / AdamW, global-norm clipping, warm-up + cosine learning rate, weight initialisers.
#include <attnviz/error.hpp>
#include <attnviz/engine/optim.hpp>

#include <algorithm>
#include <cmath>

namespace attnviz::nn {

Adam::Adam(const ParamSet& params, const AdamOptions& opt) : params_(params.params()), opt_(opt) {
  for (Param* p : params_) {
    m_.push_back(Mat::Zero(p->value.rows(), p->value.cols()));
    v_.push_back(Mat::Zero(p->value.rows(), p->value.cols()));
  }
}

void Adam::step() { step(opt_.lr); }

void Adam::step(float lr) {
  ++t_;
  const float b1 = opt_.beta1, b2 = opt_.beta2;
  const float c1 = 1.f - std::pow(b1, static_cast<float>(t_));
  const float c2 = 1.f - std::pow(b2, static_cast<float>(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    float* w = p.value.data();
    const float* g = p.grad.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const Eigen::Index n = p.value.size();
    const float l2 = (!opt_.decoupled && p.decay) ? opt_.weight_decay : 0.f;
    const float wd = (opt_.decoupled && p.decay) ? lr * opt_.weight_decay : 0.f;
    for (Eigen::Index j = 0; j < n; ++j) {
      float gj = g[j] + l2 * w[j];
      m[j] = b1 * m[j] + (1.f - b1) * gj;
      v[j] = b2 * v[j] + (1.f - b2) * gj * gj;
      float mhat = m[j] / c1, vhat = v[j] / c2;
      w[j] -= wd * w[j];
      w[j] -= lr * mhat / (std::sqrt(vhat) + opt_.eps);
    }
  }
}

void Adam::save_into(StFile& file, const std::string& prefix) const {
  auto put = [&](const std::string& name, const Mat& m) {
    StTensor t;
    t.name = name;
    t.dtype = "F32";
    t.shape = {m.rows(), m.cols()};
    t.data.assign(m.data(), m.data() + m.size());
    file.tensors.push_back(std::move(t));
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    put(prefix + ".m." + params_[i]->name, m_[i]);
    put(prefix + ".v." + params_[i]->name, v_[i]);
  }
  Mat t(1, 1);
  t(0, 0) = static_cast<float>(t_);   // exact up to 2^24 steps
  put(prefix + ".t", t);
}

void Adam::load_from(const StFile& file, const std::string& path, const std::string& prefix) {
  auto get = [&](const std::string& name, Mat& m) {
    const StTensor* t = file.find(name);
    if (!t) throw InputError(path, "missing tensor '" + name + "'");
    if (static_cast<Eigen::Index>(t->data.size()) != m.size())
      throw InputError(path, "tensor '" + name + "': expected " + std::to_string(m.size()) +
                                 " values, found " + std::to_string(t->data.size()));
    std::copy(t->data.begin(), t->data.end(), m.data());
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    get(prefix + ".m." + params_[i]->name, m_[i]);
    get(prefix + ".v." + params_[i]->name, v_[i]);
  }
  Mat t(1, 1);
  get(prefix + ".t", t);
  if (!(t(0, 0) >= 0)) throw InputError(path, "tensor '" + prefix + ".t': negative step count");
  t_ = static_cast<long>(t(0, 0));
}

AdamW::AdamW(const ParamSet& params, AdamOptions opt)
    : Adam(params, [&] {
        opt.decoupled = true;
        return opt;
      }()) {}

double clip_grad_norm(ParamSet& params, double max_norm) {
  double norm = params.grad_norm();
  if (norm > max_norm && norm > 0) {
    float s = static_cast<float>(max_norm / (norm + 1e-6));
    for (Param* p : params.params()) p->grad *= s;
  }
  return norm;
}

float warmup_cosine(long step, const ScheduleOptions& o) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.base_lr * static_cast<float>(step + 1) / static_cast<float>(o.warmup_steps);
  long decay = std::max<long>(1, o.total_steps - o.warmup_steps);
  double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / decay);
  return static_cast<float>(o.min_lr + 0.5 * (o.base_lr - o.min_lr) * (1.0 + std::cos(M_PI * progress)));
}

void uniform_init(Mat& w, Rng& rng, float bound) {
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = rng.uniform(-bound, bound);
}
void normal_init(Mat& w, Rng& rng, float stddev) {
  for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = stddev * rng.normal();
}
void xavier_uniform(Mat& w, Rng& rng) {
  uniform_init(w, rng, std::sqrt(6.f / static_cast<float>(w.rows() + w.cols())));
}
void kaiming_uniform(Mat& w, Rng& rng) {
  uniform_init(w, rng, std::sqrt(6.f / static_cast<float>(std::max<Eigen::Index>(1, w.rows()))));
}
void kaiming_normal(Mat& w, Rng& rng) {
  normal_init(w, rng, std::sqrt(2.f / static_cast<float>(std::max<Eigen::Index>(1, w.rows()))));
}

}  // namespace attnviz::nn
