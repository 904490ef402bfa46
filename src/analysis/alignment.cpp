// Alignment extraction from attention matrices, precision/recall/AER scoring, 1-based Pharaoh I/O
// and the hints that catch a file read with the wrong index base.
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>

#include <algorithm>
#include <limits>
#include <set>

namespace attnviz {

AlignMethod parse_align_method(const std::string& name) {
  if (name == "argmax") return AlignMethod::Argmax;
  if (name == "itermax") return AlignMethod::Itermax;
  if (name == "intersect") return AlignMethod::Intersect;
  if (name == "threshold") return AlignMethod::Threshold;
  throw UsageError("unknown alignment method '" + name + "' (expected argmax, itermax, intersect or threshold)");
}

const char* align_method_name(AlignMethod m) {
  switch (m) {
    case AlignMethod::Argmax: return "argmax";
    case AlignMethod::Itermax: return "itermax";
    case AlignMethod::Intersect: return "intersect";
    case AlignMethod::Threshold: return "threshold";
  }
  return "?";
}

namespace {

// Row-wise (forward) and column-wise (backward) argmax as 0/1 matrices; their product is the
// mutual-argmax intersection. w: [T, S].
Mat mutual_argmax(const Mat& w) {
  const int T = static_cast<int>(w.rows()), S = static_cast<int>(w.cols());
  Mat fwd = Mat::Zero(T, S), bwd = Mat::Zero(T, S);
  for (int j = 0; j < T; ++j) {
    Eigen::Index i;
    w.row(j).maxCoeff(&i);
    fwd(j, i) = 1;
  }
  for (int i = 0; i < S; ++i) {
    Eigen::Index j;
    w.col(i).maxCoeff(&j);
    bwd(j, i) = 1;
  }
  return fwd.cwiseProduct(bwd);
}

// SimAlign's itermax: start from the mutual argmax; then, while tokens remain unaligned, search
// again in the weights damped by alpha where one side is already aligned and zeroed where both
// are, adding new mutual-argmax links (Jalili Sabet et al. 2020, Algorithm 1).
Mat itermax(const Mat& w, int max_count, float alpha) {
  const int T = static_cast<int>(w.rows()), S = static_cast<int>(w.cols());
  Mat inter = mutual_argmax(w);
  if (std::min(T, S) <= 2) return inter;
  for (int count = 1; count < max_count; ++count) {
    Vec row_free = (1.f - inter.rowwise().sum().array().min(1.f)).matrix();          // [T]
    RowVec col_free = (1.f - inter.colwise().sum().array().min(1.f)).matrix();       // [S]
    if (row_free.sum() < 1.f || col_free.sum() < 1.f) break;
    Mat mask(T, S), keep(T, S);
    for (int j = 0; j < T; ++j)
      for (int i = 0; i < S; ++i) {
        mask(j, i) = std::min(1.f, alpha * row_free(j) + alpha * col_free(i));
        keep(j, i) = 1.f - (1.f - row_free(j)) * (1.f - col_free(i));
      }
    Mat fresh = mutual_argmax(w.cwiseProduct(mask)).cwiseProduct(keep);
    if ((inter + fresh).cwiseMin(1.f) == inter) break;
    inter = (inter + fresh).cwiseMin(1.f);
  }
  return inter;
}

}  // namespace

int nan_rows(const Mat& w) {
  int n = 0;
  for (Eigen::Index j = 0; j < w.rows(); ++j) n += w.row(j).hasNaN() ? 1 : 0;
  return n;
}

Alignment extract_alignment(const Mat& weights, const AlignOptions& opt) {
  Alignment a;
  const int T = static_cast<int>(weights.rows()), S = static_cast<int>(weights.cols());
  if (T == 0 || S == 0) return a;
  // Rows with a NaN: the lowest float, so that they never win a column's argmax (not -Inf, which
  // itermax's 0 mask would turn into NaN), and no links of their own (Eigen's maxCoeff over NaN
  // returns index 0, which linked every such row to source 0).
  std::vector<bool> skip(T, false);
  Mat w = weights;
  for (int j = 0; j < T; ++j)
    if (w.row(j).hasNaN()) skip[j] = true, w.row(j).setConstant(std::numeric_limits<float>::lowest());
  Mat links;
  switch (opt.method) {
    case AlignMethod::Argmax:
      links = Mat::Zero(T, S);
      for (int j = 0; j < T; ++j) {
        Eigen::Index i;
        w.row(j).maxCoeff(&i);
        links(j, i) = 1;
      }
      break;
    case AlignMethod::Intersect: links = mutual_argmax(w); break;
    case AlignMethod::Itermax: links = itermax(w, opt.itermax_iterations, opt.itermax_alpha); break;
    case AlignMethod::Threshold: links = (w.array() >= opt.threshold).cast<float>().matrix(); break;
  }
  for (int j = 0; j < T; ++j)
    for (int i = 0; i < S; ++i)
      if (links(j, i) > 0 && !skip[j]) a.links.push_back({i, j, true});
  return a;
}

bool is_special_token(const std::string& t) {
  static const std::set<std::string> specials = {"<eos>", "<bos>", "<pad>", "<s>",   "</s>",  "<unk>",
                                                 "[CLS]", "[SEP]", "[PAD]", "<cls>", "<sep>", "<|endoftext|>"};
  return specials.count(t) > 0 && t != "<unk>";
}

AlignmentMatrix alignment_matrix(const AttentionRecord& record, const RecordAlignmentOptions& opt) {
  const AttentionTensor* t = nullptr;
  if (!opt.tensor.empty()) {
    t = record.find(opt.tensor);
    if (!t) {
      std::string names;
      for (const auto& x : record.tensors) names += (names.empty() ? "" : ", ") + x.name;
      throw UsageError("no tensor '" + opt.tensor + "' in the record (it has: " + names + ")");
    }
  } else {
    for (const auto& x : record.tensors)
      if (parse_tensor_name(x.name).kind == "cross" &&
          (!t || parse_tensor_name(x.name).layer > parse_tensor_name(t->name).layer))
        t = &x;
    if (!t && !record.tensors.empty()) t = &record.tensors.front();
  }
  if (!t) throw UsageError("the record holds no attention tensor");
  if (opt.head >= t->heads) throw UsageError("head " + std::to_string(opt.head) + " out of range (tensor '" + t->name + "' has " + std::to_string(t->heads) + " heads)");
  Mat full = opt.head < 0 ? t->mean_heads() : t->head(opt.head);  // [T, S]
  const auto* qt = record.axis_tokens(t->query_axis);
  const auto* kt = record.axis_tokens(t->key_axis);
  std::vector<int> rows, cols;
  AlignmentMatrix out;
  out.tensor = t->name;
  for (int j = 0; j < t->queries; ++j) {
    const std::string tok = qt && j < static_cast<int>(qt->size()) ? (*qt)[j] : "";
    if (!opt.keep_special && is_special_token(tok)) continue;
    rows.push_back(j);
    if (qt) out.target.push_back(tok);
  }
  for (int i = 0; i < t->keys; ++i) {
    const std::string tok = kt && i < static_cast<int>(kt->size()) ? (*kt)[i] : "";
    if (!opt.keep_special && is_special_token(tok)) continue;
    cols.push_back(i);
    if (kt) out.source.push_back(tok);
  }
  out.weights.resize(static_cast<int>(rows.size()), static_cast<int>(cols.size()));
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < cols.size(); ++c) out.weights(r, c) = full(rows[r], cols[c]);
  return out;
}

// ---- scoring ---------------------------------------------------------------------------------

void AlignmentScore::add(const Alignment& pred, const Alignment& gold) {
  std::set<std::pair<int, int>> a, s, p;
  for (const auto& l : pred.links) a.insert({l.source, l.target});
  for (const auto& l : gold.links) {
    p.insert({l.source, l.target});
    if (l.sure) s.insert({l.source, l.target});
  }
  predicted += static_cast<long>(a.size());
  sure += static_cast<long>(s.size());
  for (const auto& x : a) {
    a_and_s += s.count(x);
    a_and_p += p.count(x);
  }
}

double AlignmentScore::precision() const { return predicted ? static_cast<double>(a_and_p) / predicted : 1.0; }
double AlignmentScore::recall() const { return sure ? static_cast<double>(a_and_s) / sure : 1.0; }
double AlignmentScore::aer() const {
  return predicted + sure ? 1.0 - static_cast<double>(a_and_s + a_and_p) / static_cast<double>(predicted + sure) : 0.0;
}

AlignmentScore score_alignments(const std::vector<Alignment>& pred, const std::vector<Alignment>& gold) {
  if (pred.size() != gold.size())
    throw InputError("", "predicted alignments have " + std::to_string(pred.size()) + " lines, gold has " +
                             std::to_string(gold.size()));
  AlignmentScore s;
  for (size_t k = 0; k < pred.size(); ++k) s.add(pred[k], gold[k]);
  return s;
}

// ---- alignment heads ---------------------------------------------------------------------------

HeadRanking rank_heads(const std::vector<AttentionRecord>& records, const std::vector<Alignment>& gold,
                       const RankHeadsOptions& opt) {
  const std::string& path = opt.input_path;
  if (records.empty()) throw InputError(path, "no samples to rank heads on");
  if (gold.size() != records.size())
    throw InputError(opt.gold_path, std::to_string(gold.size()) + " gold line(s) for " + std::to_string(records.size()) +
                               " sample(s)");
  // Tensors of the first record that pass the filter; every record must have them.
  std::vector<const AttentionTensor*> chosen;
  for (const auto& t : records.front().tensors) {
    const bool pass = opt.tensors.empty() ? parse_tensor_name(t.name).kind == "cross"
                                          : t.name.find(opt.tensors) != std::string::npos;
    if (pass) chosen.push_back(&t);
  }
  if (chosen.empty() && opt.tensors.empty())
    for (const auto& t : records.front().tensors) chosen.push_back(&t);
  if (chosen.empty()) throw InputError(path, "no tensor name contains '" + opt.tensors + "'");

  HeadRanking out;
  for (const AttentionTensor* t : chosen) {
    const int layer = parse_tensor_name(t->name).layer;
    for (int h = -1; h < t->heads; ++h) {
      std::vector<Alignment> pred;
      std::vector<PairSize> dims;
      for (size_t k = 0; k < records.size(); ++k) {
        const AttentionTensor* tk = records[k].find(t->name);
        if (!tk) throw InputError(path, "sample " + std::to_string(k) + " has no tensor '" + t->name + "'");
        if (tk->heads != t->heads)
          throw InputError(path, "sample " + std::to_string(k) + ": '" + t->name + "' has " +
                                     std::to_string(tk->heads) + " heads, sample 0 has " + std::to_string(t->heads));
        auto m = alignment_matrix(records[k], {.tensor = t->name, .head = h, .keep_special = opt.keep_special});
        pred.push_back(extract_alignment(m.weights, opt.align));
        dims.push_back({static_cast<int>(m.weights.cols()), static_cast<int>(m.weights.rows())});
      }
      if (h == -1) check_alignments_fit(gold, dims, opt.gold_path, opt.gold_format);
      HeadAer r{t->name, layer, h, score_alignments(pred, gold)};
      (h < 0 ? out.means : out.heads).push_back(r);
    }
  }
  double sum = 0;
  for (const auto& r : out.heads) sum += r.score.aer();
  out.mean_head_aer = out.heads.empty() ? 0 : sum / static_cast<double>(out.heads.size());
  std::stable_sort(out.heads.begin(), out.heads.end(),
                   [](const HeadAer& a, const HeadAer& b) { return a.score.aer() < b.score.aer(); });
  return out;
}

// ---- Pharaoh files ---------------------------------------------------------------------------

std::vector<Alignment> read_pharaoh_file(const std::filesystem::path& path, const PharaohOptions& opt) {
  auto all = read_pharaoh(path);
  if (opt.one_indexed) {
    for (size_t k = 0; k < all.size(); ++k)
      for (auto& l : all[k].links) {
        if (l.source < 1 || l.target < 1)
          throw InputError(path.string(), "line " + std::to_string(k + 1) + ": index 0 in a 1-based alignment (" +
                                              (opt.flag.empty() ? std::string("--one-indexed") : opt.flag) +
                                              "); is the file 0-based?");
        --l.source, --l.target;
      }
  }
  if (opt.all_sure)
    for (auto& a : all)
      for (auto& l : a.links) l.sure = true;
  return all;
}

std::vector<std::string> pharaoh_index_hints(const std::vector<Alignment>& all, const std::string& path,
                                             const PharaohOptions& opt) {
  std::vector<std::string> hints;
  if (opt.one_indexed) return hints;
  int min_s = std::numeric_limits<int>::max(), min_t = min_s;
  long links = 0;
  for (const auto& a : all)
    for (const auto& l : a.links) min_s = std::min(min_s, l.source), min_t = std::min(min_t, l.target), ++links;
  // One or two links may miss index 0 by chance; a file of real sentences never does.
  if (links >= 3 && min_s >= 1 && min_t >= 1)
    hints.push_back(path + ": read as 0-based, but no link uses index 0 on either side (" + std::to_string(links) +
                    " links): the file looks 1-based; if it is, pass " +
                    (opt.flag.empty() ? std::string("--one-indexed") : opt.flag));
  return hints;
}

Alignment read_pharaoh_sample(const std::filesystem::path& path, int line, const PharaohOptions& opt,
                              std::vector<std::string>* hints) {
  auto all = read_pharaoh_file(path, opt);
  if (hints) *hints = pharaoh_index_hints(all, path.string(), opt);
  if (all.empty()) return {};
  if (all.size() == 1 || line < 0) return all.front();
  if (line >= static_cast<int>(all.size()))
    throw InputError(path.string(), "has " + std::to_string(all.size()) + " alignment lines, line " +
                                        std::to_string(line) + " was asked for");
  return all[line];
}

void check_alignments_fit(const std::vector<Alignment>& all, const std::vector<PairSize>& sizes,
                          const std::string& path, const PharaohOptions& opt) {
  // Would every link fit if the file were 1-based (no index 0, none past the end after the shift)?
  bool fits_one_based = !opt.one_indexed;
  for (size_t k = 0; k < all.size() && k < sizes.size() && fits_one_based; ++k)
    for (const auto& l : all[k].links)
      if (l.source < 1 || l.target < 1 || l.source > sizes[k].source || l.target > sizes[k].target) {
        fits_one_based = false;
        break;
      }
  const int base = opt.one_indexed ? 1 : 0;
  for (size_t k = 0; k < all.size() && k < sizes.size(); ++k)
    for (const auto& l : all[k].links)
      if (l.source >= sizes[k].source || l.target >= sizes[k].target)
        throw InputError(path, "line " + std::to_string(k + 1) + ": link " + std::to_string(l.source + base) + "-" +
                                   std::to_string(l.target + base) + " lies outside the sentence pair (" +
                                   std::to_string(sizes[k].source) + " source, " + std::to_string(sizes[k].target) +
                                   " target tokens" + (opt.one_indexed ? ", read 1-based" : ", read 0-based") + ")" +
                                   (fits_one_based ? "; the file looks 1-based: pass " +
                                                         (opt.flag.empty() ? std::string("--one-indexed") : opt.flag)
                                                   : std::string()));
}

std::string format_pharaoh(const Alignment& a, const PharaohOptions& opt) {
  if (!opt.one_indexed) return to_pharaoh(a);
  Alignment b = a;
  for (auto& l : b.links) ++l.source, ++l.target;
  return to_pharaoh(b);
}

}  // namespace attnviz
