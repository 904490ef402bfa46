// Training support: Adam / AdamW, clipping by global norm, warm-up + cosine schedule, and
// Xavier / Kaiming initialisation.
#pragma once
#include <attnviz/engine/param.hpp>
#include <attnviz/engine/rng.hpp>

#include <string>
#include <vector>

namespace attnviz::nn {

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.f;
  // false: Adam with L2 (decay added to the gradient); true: AdamW (decoupled, Loshchilov & Hutter),
  // applied only to params with decay == true.
  bool decoupled = false;
};

// Adam (Kingma & Ba) with bias correction. Walks the ParamSet in registration order.
class Adam {
 public:
  Adam(const ParamSet& params, const AdamOptions& opt = {});
  void step();              // uses opt.lr
  void step(float lr);      // one update with this learning rate (e.g. from warmup_cosine)
  long steps() const { return t_; }
  AdamOptions& options() { return opt_; }
  // Moments and step count as tensors "<prefix>.m.<param>", "<prefix>.v.<param>", "<prefix>.t"
  // (for --resume). load_from throws InputError(path, ...) on a missing or mis-shaped tensor.
  void save_into(StFile& file, const std::string& prefix = "optim") const;
  void load_from(const StFile& file, const std::string& path, const std::string& prefix = "optim");

 private:
  std::vector<Param*> params_;
  AdamOptions opt_;
  std::vector<Mat> m_, v_;
  long t_ = 0;
};

// AdamW: Adam with decoupled weight decay (default 0.01).
class AdamW : public Adam {
 public:
  AdamW(const ParamSet& params, AdamOptions opt = {.lr = 1e-3f, .weight_decay = 0.01f});
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(ParamSet& params, double max_norm);

struct ScheduleOptions {
  float base_lr = 1e-3f;
  float min_lr = 0.f;
  int warmup_steps = 0;   // linear ramp from base_lr/warmup to base_lr
  int total_steps = 1;    // cosine decay from base_lr to min_lr over the rest
};
// Learning rate at `step` (0-based); after total_steps stays at min_lr.
float warmup_cosine(long step, const ScheduleOptions& opt);

// Initialisers (fan_in = rows, fan_out = cols for a [in, out] weight).
void xavier_uniform(Mat& w, Rng& rng);                 // U(+-sqrt(6 / (fan_in + fan_out)))
void kaiming_uniform(Mat& w, Rng& rng);                // U(+-sqrt(6 / fan_in)) (ReLU gain)
void kaiming_normal(Mat& w, Rng& rng);                 // N(0, 2 / fan_in)
void normal_init(Mat& w, Rng& rng, float stddev);      // N(0, stddev^2)
void uniform_init(Mat& w, Rng& rng, float bound);      // U(+-bound)

}  // namespace attnviz::nn
