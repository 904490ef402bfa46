// What the model benchmarks (bench lm, bench encoder) share: a sink that keeps every attention
// tensor, as a record would, and the best-of-N wall-clock timer.
#pragma once

#include <attnviz/models/model.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace attnviz::cli {

// Keeps every tensor's weights (what a record would hold), as generate's and record's sinks do.
struct KeepAllWeights : models::AttentionSink {
  std::map<std::string, nn::AttentionWeights> w;
  void weights(const std::string& name, nn::AttentionWeights&& x, int) override { w[name] = std::move(x); }
};

// Runs `f` once to warm up, then repeats it until `min_seconds` have passed (at least twice, at most
// `max_runs` times) and returns the best wall-clock time in seconds.
inline double best_seconds(const std::function<void()>& f, double min_seconds, int max_runs = 10) {
  f();
  double best = 1e300, total = 0;
  for (int runs = 0; (total < min_seconds || runs < 2) && runs < max_runs; ++runs) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, t);
    total += t;
  }
  return best;
}

}  // namespace attnviz::cli
