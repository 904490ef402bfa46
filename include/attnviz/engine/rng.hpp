// Rng: the engine's one seedable random generator (xoshiro256**, seeded by splitmix64).
#pragma once
#include <cstdint>
#include <vector>

namespace attnviz::nn {

// Deterministic across platforms: no std::*_distribution (their output is implementation-defined).
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0x5eed);
  std::uint64_t next_u64();
  float uniform();                       // [0, 1)
  float uniform(float lo, float hi);     // [lo, hi)
  float normal();                        // N(0, 1), Box-Muller
  float normal(float mean, float stddev);
  int below(int n);                      // uniform integer in [0, n), n > 0
  void shuffle(std::vector<int>& v);     // Fisher-Yates
  // An independent generator for stream `id` (e.g. one per thread or per sample), derived from
  // this generator's seed only, so it does not advance *this.
  Rng fork(std::uint64_t id) const;

 private:
  std::uint64_t seed_;
  std::uint64_t s_[4];
};

}  // namespace attnviz::nn
