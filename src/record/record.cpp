// AttentionRecord in memory: tensor access, name parsing, validation.
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>

#include <algorithm>
#include <regex>
#include <set>

namespace attnviz {

AttentionTensor::AttentionTensor(std::string n, int h, int q, int k, std::string qa, std::string ka)
    : name(std::move(n)), heads(h), queries(q), keys(k),
      data(static_cast<size_t>(h) * q * k, 0.0f), query_axis(std::move(qa)), key_axis(std::move(ka)) {}

Mat AttentionTensor::head(int h) const {
  // [queries, keys]
  return ConstMatMap(data.data() + static_cast<size_t>(h) * queries * keys, queries, keys);
}

Mat AttentionTensor::mean_heads() const {
  Mat m = Mat::Zero(queries, keys);  // [queries, keys]
  for (int h = 0; h < heads; ++h) m += head(h);
  if (heads > 0) m /= static_cast<float>(heads);
  return m;
}

void AttentionTensor::set_head(int h, const Mat& m) {
  MatMap(data.data() + static_cast<size_t>(h) * queries * keys, queries, keys) = m;
}

TensorName parse_tensor_name(const std::string& name) {
  static const std::regex re(R"(^(.*?)\.?layer_?(\d+)(?:\.(.*))?$)");
  std::smatch m;
  TensorName out;
  if (std::regex_match(name, m, re) && m[2].length() < 7) {
    out.stack = m[1].str();
    out.layer = std::stoi(m[2].str());
    out.kind = m[3].str();
  } else {
    out.stack = name;
  }
  return out;
}

const AttentionTensor* AttentionRecord::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const AttentionTensor* AttentionRecord::find_gradient(const std::string& name) const {
  for (const auto& t : gradients)
    if (t.name == name) return &t;
  return nullptr;
}

const AttentionTensor* AttentionRecord::find_relevance(const std::string& name) const {
  for (const auto& t : relevance)
    if (t.name == name) return &t;
  return nullptr;
}

const std::vector<std::string>* AttentionRecord::axis_tokens(const std::string& axis) const {
  if (axis.empty()) return nullptr;
  auto it = tokens.find(axis);
  return it == tokens.end() ? nullptr : &it->second;
}

std::vector<const AttentionTensor*> AttentionRecord::layers(const std::string& stack, const std::string& kind) const {
  std::vector<std::pair<int, const AttentionTensor*>> found;
  for (const auto& t : tensors) {
    TensorName n = parse_tensor_name(t.name);
    if (n.layer >= 0 && n.stack == stack && n.kind == kind) found.emplace_back(n.layer, &t);
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<const AttentionTensor*> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void AttentionRecord::validate(const std::string& path) const {
  std::set<std::string> names;
  auto check = [&](const AttentionTensor& t, const char* what) {
    if (t.heads <= 0 || t.queries <= 0 || t.keys <= 0)
      throw InputError(path, std::string(what) + " '" + t.name + "' has an empty shape [" +
                                 std::to_string(t.heads) + ", " + std::to_string(t.queries) + ", " +
                                 std::to_string(t.keys) + "]");
    if (t.data.size() != static_cast<size_t>(t.heads) * t.queries * t.keys)
      throw InputError(path, std::string(what) + " '" + t.name + "' data size disagrees with its shape");
    auto axis = [&](const std::string& a, int n, const char* which) {
      if (const auto* tok = axis_tokens(a); tok && static_cast<int>(tok->size()) != n)
        throw InputError(path, std::string(what) + " '" + t.name + "': " + which + " axis has " +
                                   std::to_string(n) + " entries but tokens '" + a + "' has " +
                                   std::to_string(tok->size()));
    };
    axis(t.query_axis, t.queries, "query");
    axis(t.key_axis, t.keys, "key");
  };
  for (const auto& t : tensors) {
    if (t.name.empty()) throw InputError(path, "attention tensor with an empty name");
    if (!names.insert(t.name).second) throw InputError(path, "duplicate tensor name '" + t.name + "'");
    check(t, "tensor");
  }
  auto check_aux = [&](const std::vector<AttentionTensor>& aux, const std::string& what) {
    for (const auto& g : aux) {
      check(g, what.c_str());
      const AttentionTensor* t = find(g.name);
      if (!t) throw InputError(path, what + " '" + g.name + "' has no attention tensor of that name");
      if (t->heads != g.heads || t->queries != g.queries || t->keys != g.keys)
        throw InputError(path, what + " '" + g.name + "' shape differs from its tensor's");
    }
  };
  check_aux(gradients, "gradient");
  check_aux(relevance, "relevance");
  if (image) {
    if (image->height <= 0 || image->width <= 0 ||
        image->pixels.size() != static_cast<size_t>(image->height) * image->width)
      throw InputError(path, "image size disagrees with its shape");
    if (image->patch_rows < 0 || image->patch_cols < 0 || image->prefix_tokens < 0)
      throw InputError(path, "negative patch grid");
  }
}

}  // namespace attnviz
