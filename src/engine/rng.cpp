// Rng: xoshiro256** seeded through splitmix64; uniform/normal draws built from raw bits.
#include <attnviz/engine/rng.hpp>

#include <cmath>
#include <stdexcept>
#include <utility>

namespace attnviz::nn {

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(std::uint64_t seed) : seed_(seed) {
  std::uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

std::uint64_t Rng::next_u64() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
float Rng::uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }

float Rng::normal() {
  // Box-Muller in double; u1 in (0, 1] so log is finite.
  double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}
float Rng::normal(float mean, float stddev) { return mean + stddev * normal(); }

int Rng::below(int n) {
  if (n <= 0) throw std::invalid_argument("Rng::below: n must be positive");
  // Lemire's multiply-shift; the tiny bias (< 2^-32) does not matter here.
  return static_cast<int>(((next_u64() >> 32) * static_cast<std::uint64_t>(n)) >> 32);
}

void Rng::shuffle(std::vector<int>& v) {
  for (int i = static_cast<int>(v.size()) - 1; i > 0; --i) std::swap(v[i], v[below(i + 1)]);
}

Rng Rng::fork(std::uint64_t id) const {
  std::uint64_t x = seed_ ^ (0xa0761d6478bd642fULL * (id + 1));
  return Rng(splitmix64(x));
}

}  // namespace attnviz::nn
