// Saliency from recorded attention: CLS attention, rollout, flow (Dinic max-flow),
// gradient-weighted rollout and Chefer et al.'s relevance rollout, over any stack of self-attention
// layers.
#include <attnviz/error.hpp>
#include <attnviz/analysis/saliency.hpp>

#include <algorithm>
#include <limits>
#include <numeric>
#include <queue>
#include <stdexcept>

namespace attnviz {

const std::vector<std::string>& saliency_method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (SaliencyMethod m : {SaliencyMethod::Cls, SaliencyMethod::Rollout, SaliencyMethod::Flow,
                             SaliencyMethod::GradRollout, SaliencyMethod::Chefer})
      n.push_back(to_string(m));
    return n;
  }();
  return names;
}

std::string saliency_method_list() {
  std::string s;
  for (const auto& n : saliency_method_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

SaliencyMethod parse_saliency_method(const std::string& s) {
  if (s == "grad_rollout") return SaliencyMethod::GradRollout;   // the old spelling
  const auto& names = saliency_method_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (s == names[i]) return static_cast<SaliencyMethod>(i);
  throw UsageError("unknown saliency method '" + s + "' (" + saliency_method_list() + ")");
}

std::string to_string(SaliencyMethod m) {
  switch (m) {
    case SaliencyMethod::Cls: return "cls";
    case SaliencyMethod::Rollout: return "rollout";
    case SaliencyMethod::Flow: return "flow";
    case SaliencyMethod::GradRollout: return "grad-rollout";
    case SaliencyMethod::Chefer: return "chefer";
  }
  return "?";
}

HeadFusion parse_head_fusion(const std::string& s) {
  if (s == "mean") return HeadFusion::Mean;
  if (s == "max") return HeadFusion::Max;
  if (s == "min") return HeadFusion::Min;
  throw UsageError("unknown head fusion '" + s + "' (mean, max, min)");
}

namespace {

// t: [H, N, N] -> fused [N, N]
Mat fuse_heads(const AttentionTensor& t, HeadFusion f) {
  if (f == HeadFusion::Mean) return t.mean_heads();
  Mat m = t.head(0);
  for (int h = 1; h < t.heads; ++h) {
    if (f == HeadFusion::Max) m = m.cwiseMax(t.head(h));
    else m = m.cwiseMin(t.head(h));
  }
  return m;
}

void check_square_stack(const std::vector<const AttentionTensor*>& layers, const char* what) {
  if (layers.empty()) throw InputError("", std::string(what) + ": no attention layers");
  int n = layers[0]->queries;
  for (auto* t : layers)
    if (t->queries != n || t->keys != n)
      throw InputError("", std::string(what) + ": tensor '" + t->name + "' is [" + std::to_string(t->heads) + ", " +
                               std::to_string(t->queries) + ", " + std::to_string(t->keys) +
                               "], expected square self-attention [H, " + std::to_string(n) + ", " +
                               std::to_string(n) + "]");
}

// Dinic's max-flow on a small dense-ish graph (double capacities).
class MaxFlow {
 public:
  explicit MaxFlow(int n) : adj_(n), level_(n), it_(n) {}
  void add_edge(int u, int v, double cap) {
    adj_[u].push_back(static_cast<int>(edges_.size()));
    edges_.push_back({v, cap});
    adj_[v].push_back(static_cast<int>(edges_.size()));
    edges_.push_back({u, 0.0});
  }
  // Resets all flows to zero (keeps the capacities), so one graph serves many (s, t) pairs.
  void reset() {
    if (cap0_.empty())
      for (auto& e : edges_) cap0_.push_back(e.cap);
    for (size_t i = 0; i < edges_.size(); ++i) edges_[i].cap = cap0_[i];
  }
  double run(int s, int t) {
    reset();
    double total = 0;
    while (bfs(s, t)) {
      std::fill(it_.begin(), it_.end(), 0);
      while (double f = dfs(s, t, std::numeric_limits<double>::infinity())) total += f;
    }
    return total;
  }

 private:
  struct Edge {
    int to;
    double cap;
  };
  static constexpr double kEps = 1e-12;
  bool bfs(int s, int t) {
    std::fill(level_.begin(), level_.end(), -1);
    std::queue<int> q;
    level_[s] = 0;
    q.push(s);
    while (!q.empty()) {
      int u = q.front();
      q.pop();
      for (int id : adj_[u]) {
        const Edge& e = edges_[id];
        if (e.cap > kEps && level_[e.to] < 0) {
          level_[e.to] = level_[u] + 1;
          q.push(e.to);
        }
      }
    }
    return level_[t] >= 0;
  }
  double dfs(int u, int t, double pushed) {
    if (u == t) return pushed;
    for (int& i = it_[u]; i < static_cast<int>(adj_[u].size()); ++i) {
      int id = adj_[u][i];
      Edge& e = edges_[id];
      if (e.cap > kEps && level_[e.to] == level_[u] + 1) {
        double f = dfs(e.to, t, std::min(pushed, e.cap));
        if (f > kEps) {
          e.cap -= f;
          edges_[id ^ 1].cap += f;
          return f;
        }
      }
    }
    return 0;
  }
  std::vector<std::vector<int>> adj_;
  std::vector<Edge> edges_;
  std::vector<double> cap0_;
  std::vector<int> level_, it_;
};

}  // namespace

Mat residual_attention(const AttentionTensor& t, const RolloutOptions& opt) {
  if (opt.discard_ratio < 0.f || opt.discard_ratio >= 1.f)
    throw UsageError("discard ratio must be in [0, 1), got " + std::to_string(opt.discard_ratio));
  Mat a = fuse_heads(t, opt.fusion);  // [N, N]
  const int n = static_cast<int>(a.rows());
  if (opt.discard_ratio > 0.f) {
    // Zero the k lowest off-diagonal weights (ties broken by position, so results are deterministic).
    std::vector<int> idx;
    for (int i = 0; i < n * n; ++i)
      if (i / n != i % n) idx.push_back(i);
    size_t k = static_cast<size_t>(opt.discard_ratio * static_cast<float>(n) * static_cast<float>(n));
    k = std::min(k, idx.size());
    std::stable_sort(idx.begin(), idx.end(), [&](int x, int y) { return a(x / n, x % n) < a(y / n, y % n); });
    for (size_t j = 0; j < k; ++j) a(idx[j] / n, idx[j] % n) = 0.f;
  }
  a += Mat::Identity(n, a.cols());
  // Per-row normalisation: each query's weights sum to one again ([N, 1] broadcast over columns).
  Vec sums = a.rowwise().sum();
  for (int q = 0; q < n; ++q) a.row(q) /= sums(q);
  return a;
}

Mat attention_rollout(const std::vector<const AttentionTensor*>& layers, const RolloutOptions& opt) {
  check_square_stack(layers, "rollout");
  const int n = layers[0]->queries;
  Mat r = Mat::Identity(n, n);  // [N, N]
  for (auto* t : layers) {
    Mat a = residual_attention(*t, opt);
    Mat next = a * r;  // the newer layer on the left
    r = std::move(next);
  }
  return r;
}

std::vector<float> attention_flow(const std::vector<const AttentionTensor*>& layers, int output,
                                  const RolloutOptions& opt) {
  check_square_stack(layers, "flow");
  const int n = layers[0]->queries, L = static_cast<int>(layers.size());
  if (output < 0 || output >= n)
    throw UsageError("flow: output token " + std::to_string(output) + " out of range [0, " + std::to_string(n) + ")");
  // Nodes: (l, k) -> l * n + k for l = 0..L. Edge (l, k) -> (l+1, q) with capacity Â_l[q, k].
  MaxFlow g((L + 1) * n);
  for (int l = 0; l < L; ++l) {
    Mat a = residual_attention(*layers[l], opt);  // [N, N]
    for (int q = 0; q < n; ++q)
      for (int k = 0; k < n; ++k)
        if (a(q, k) > 0.f) g.add_edge(l * n + k, (l + 1) * n + q, a(q, k));
  }
  std::vector<float> flow(n);
  for (int i = 0; i < n; ++i) flow[i] = static_cast<float>(g.run(i, L * n + output));
  return flow;
}

namespace {
// R = (I + Ā_L) ... (I + Ā_1) with Ā_l = mean_h (grad_h ⊙ M_h)^+; M = the weights or their relevance.
Mat weighted_rollout(const std::vector<const AttentionTensor*>& layers, const std::vector<const AttentionTensor*>& grads,
                     const char* what) {
  check_square_stack(layers, what);
  if (grads.size() != layers.size())
    throw InputError("", std::string(what) + ": one gradient per attention layer needed");
  const int n = layers[0]->queries;
  Mat r = Mat::Identity(n, n);  // [N, N]
  for (size_t l = 0; l < layers.size(); ++l) {
    const AttentionTensor& w = *layers[l];
    const AttentionTensor& g = *grads[l];
    if (g.heads != w.heads || g.queries != w.queries || g.keys != w.keys)
      throw InputError("", "gradient of '" + w.name + "' does not have its tensor's shape");
    Mat abar = Mat::Zero(n, n);
    for (int h = 0; h < w.heads; ++h) abar += g.head(h).cwiseProduct(w.head(h)).cwiseMax(0.f);
    abar /= static_cast<float>(w.heads);
    r += abar * r;
  }
  return r;
}
}  // namespace

Mat grad_rollout(const std::vector<const AttentionTensor*>& layers, const std::vector<const AttentionTensor*>& grads) {
  return weighted_rollout(layers, grads, "grad-rollout");
}

Mat chefer_rollout(const std::vector<const AttentionTensor*>& relevance, const std::vector<const AttentionTensor*>& grads) {
  return weighted_rollout(relevance, grads, "chefer");
}

Mat gradient_weighted_heads(const AttentionTensor& m, const AttentionTensor& g) {
  if (g.heads != m.heads || g.queries != m.queries || g.keys != m.keys)
    throw InputError("", "gradient of '" + m.name + "' does not have its tensor's shape");
  Mat abar = Mat::Zero(m.queries, m.keys);   // [Nq, Nk]
  for (int h = 0; h < m.heads; ++h) abar += g.head(h).cwiseProduct(m.head(h)).cwiseMax(0.f);
  if (m.heads > 0) abar /= static_cast<float>(m.heads);
  return abar;
}

Mat normalize_self_relevance(const Mat& r) {
  if (r.rows() != r.cols()) throw std::invalid_argument("normalize_self_relevance: the map must be square");
  Mat rhat = r - Mat::Identity(r.rows(), r.cols());   // [N, N]
  for (Eigen::Index i = 0; i < rhat.rows(); ++i) {
    const double s = rhat.row(i).cast<double>().sum();
    if (s != 0) rhat.row(i) /= static_cast<float>(s);
  }
  return rhat + Mat::Identity(r.rows(), r.cols());
}

EncoderDecoderRelevance encoder_decoder_relevance(const std::vector<Mat>& encoder, const std::vector<Mat>& decoder_self,
                                                  const std::vector<Mat>& decoder_cross) {
  if (decoder_self.size() != decoder_cross.size() || decoder_self.empty())
    throw std::invalid_argument("encoder_decoder_relevance: one self and one cross map per decoder layer needed");
  const Eigen::Index T = decoder_cross[0].rows(), S = decoder_cross[0].cols();
  EncoderDecoderRelevance r;
  r.source = Mat::Identity(S, S);
  r.target = Mat::Identity(T, T);
  r.target_source = Mat::Zero(T, S);
  for (const Mat& a : encoder) {   // eq. 6 on the source
    if (a.rows() != S || a.cols() != S) throw std::invalid_argument("encoder_decoder_relevance: encoder maps must be [S, S]");
    r.source += a * r.source;
  }
  const Mat src = normalize_self_relevance(r.source);   // R̄^ss: fixed once the encoder is done
  for (size_t l = 0; l < decoder_self.size(); ++l) {
    const Mat& as = decoder_self[l];
    const Mat& ac = decoder_cross[l];
    if (as.rows() != T || as.cols() != T || ac.rows() != T || ac.cols() != S)
      throw std::invalid_argument("encoder_decoder_relevance: decoder maps must be [T, T] and [T, S]");
    // eq. 6-7: the target's self-attention mixes the target tokens and what they took from the source
    r.target += as * r.target;
    r.target_source += as * r.target_source;
    // eq. 10
    r.target_source += normalize_self_relevance(r.target).transpose() * ac * src;
  }
  return r;
}

std::vector<const AttentionTensor*> self_attention_layers(const AttentionRecord& r, const std::string& stack,
                                                          const std::string& path) {
  std::vector<const AttentionTensor*> layers;
  if (!stack.empty()) {
    layers = r.layers(stack, "self");
    if (layers.empty()) throw InputError(path, "no self-attention layers '" + stack + ".layer<N>.self' in the record");
  } else {
    for (const char* kind : {"self", ""}) {
      for (const auto& t : r.tensors) {
        TensorName nm = parse_tensor_name(t.name);
        if (nm.layer >= 0 && (nm.kind == kind || std::string(kind).empty()) && t.queries == t.keys) {
          layers = r.layers(nm.stack, nm.kind);
          break;
        }
      }
      if (!layers.empty()) break;
    }
    if (layers.empty()) throw InputError(path, "no stacked self-attention layers ('<stack>.layer<N>.self') in the record");
  }
  int n = layers[0]->queries;
  for (auto* t : layers)
    if (t->queries != n || t->keys != n)
      throw InputError(path, "tensor '" + t->name + "' is not [H, " + std::to_string(n) + ", " + std::to_string(n) +
                                 "] like the other layers of its stack");
  return layers;
}

std::vector<float> token_saliency(const AttentionRecord& r, const SaliencyOptions& opt, const std::string& path) {
  // A single-query tensor (attention pooling) is its own explanation.
  bool layered = false;
  for (const auto& t : r.tensors)
    if (parse_tensor_name(t.name).layer >= 0 && t.queries == t.keys) layered = true;
  if (!layered && opt.stack.empty()) {
    for (const auto& t : r.tensors)
      if (t.queries == 1) {
        if (opt.head >= t.heads) throw UsageError("head " + std::to_string(opt.head) + " out of range");
        Mat m = opt.head >= 0 ? t.head(opt.head) : t.mean_heads();  // [1, K]
        return std::vector<float>(m.data(), m.data() + m.size());
      }
  }
  auto layers = self_attention_layers(r, opt.stack, path);
  const int n = layers[0]->queries;
  if (opt.query < 0 || opt.query >= n)
    throw UsageError("query token " + std::to_string(opt.query) + " out of range [0, " + std::to_string(n) + ")");
  auto row = [&](const Mat& m) {
    RowVec v = m.row(opt.query);
    return std::vector<float>(v.data(), v.data() + v.size());
  };
  try {
    switch (opt.method) {
      case SaliencyMethod::Cls: {
        int L = static_cast<int>(layers.size());
        int l = opt.layer < 0 ? L - 1 : opt.layer;
        if (l >= L) throw UsageError("layer " + std::to_string(opt.layer) + " out of range [0, " + std::to_string(L) + ")");
        const AttentionTensor& t = *layers[l];
        if (opt.head >= t.heads)
          throw UsageError("head " + std::to_string(opt.head) + " out of range [0, " + std::to_string(t.heads) + ")");
        return row(opt.head >= 0 ? t.head(opt.head) : t.mean_heads());
      }
      case SaliencyMethod::Rollout: return row(attention_rollout(layers, opt.rollout));
      case SaliencyMethod::Flow: return attention_flow(layers, opt.query, opt.rollout);
      case SaliencyMethod::GradRollout: {
        std::vector<const AttentionTensor*> grads;
        for (auto* t : layers) {
          const AttentionTensor* g = r.find_gradient(t->name);
          if (!g)
            throw InputError(path, "grad-rollout needs attention gradients, and the record has none for '" + t->name +
                                       "' (record with `attnviz record mnist`, which stores them)");
          grads.push_back(g);
        }
        return row(grad_rollout(layers, grads));
      }
      case SaliencyMethod::Chefer: {
        std::vector<const AttentionTensor*> rel, grads;
        for (auto* t : layers) {
          const AttentionTensor* g = r.find_gradient(t->name);
          const AttentionTensor* rl = r.find_relevance(t->name);
          if (!g || !rl)
            throw InputError(path, "chefer needs the LRP relevance and the gradient of every attention map, and the "
                                   "record has no " + std::string(g ? "relevance" : "gradient") + " for '" + t->name + "'" +
                                   " (record with `attnviz record mnist`, which stores both)");
          rel.push_back(rl);
          grads.push_back(g);
        }
        return row(chefer_rollout(rel, grads));
      }
    }
  } catch (const InputError& e) {
    if (!e.path().empty() || path.empty()) throw;
    throw InputError(path, e.reason());
  }
  return {};
}

Mat patch_saliency(const AttentionRecord& r, const SaliencyOptions& opt, const std::string& path) {
  if (!r.image || r.image->patch_rows <= 0 || r.image->patch_cols <= 0)
    throw InputError(path, "the record has no image with a patch grid to lay the saliency on");
  const RecordImage& im = *r.image;
  std::vector<float> s = token_saliency(r, opt, path);
  const int P = im.patch_rows * im.patch_cols;
  int prefix = im.prefix_tokens;
  // A pooling tensor attends over the patches only.
  if (static_cast<int>(s.size()) == P) prefix = 0;
  if (static_cast<int>(s.size()) < prefix + P)
    throw InputError(path, "attention has " + std::to_string(s.size()) + " keys, fewer than the " +
                               std::to_string(prefix) + " prefix tokens + " + std::to_string(P) + " patches of the image");
  Mat m(im.patch_rows, im.patch_cols);  // [patch_rows, patch_cols]
  for (int p = 0; p < P; ++p) m(p / im.patch_cols, p % im.patch_cols) = s[prefix + p];
  return m;
}

}  // namespace attnviz
