// MNIST models: config (JSON in the model file), factory, model files, evaluation and recording.
#include <attnviz/error.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/pool_classifier.hpp>
#include <attnviz/models/vit.hpp>
#include <attnviz/engine/loss.hpp>
#include <attnviz/io/safetensors.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <omp.h>

namespace attnviz::models {

using json = nlohmann::json;

void MnistConfig::validate() const {
  if (arch != "vit" && arch != "pool") throw UsageError("unknown architecture '" + arch + "' (vit or pool)");
  if (image <= 0 || patch <= 0 || image % patch)
    throw UsageError(fmt::format("patch size {} must divide the image side {}", patch, image));
  if (dim <= 0 || depth <= 0 || heads <= 0 || mlp <= 0 || classes < 2 || classes > 10)
    throw UsageError("model sizes must be positive (and 2..10 classes)");
  if (dim % heads) throw UsageError(fmt::format("width {} is not a multiple of the head count {}", dim, heads));
}

std::string MnistConfig::to_json() const {
  return json{{"arch", arch}, {"image", image}, {"patch", patch}, {"dim", dim}, {"depth", depth},
              {"heads", heads}, {"mlp", mlp}, {"classes", classes}}
      .dump();
}

MnistConfig MnistConfig::from_json(const std::string& s, const std::string& path) {
  MnistConfig c;
  try {
    json j = json::parse(s);
    c.arch = j.at("arch").get<std::string>();
    c.image = j.at("image").get<int>();
    c.patch = j.at("patch").get<int>();
    c.dim = j.at("dim").get<int>();
    c.depth = j.value("depth", 1);
    c.heads = j.value("heads", 1);
    c.mlp = j.value("mlp", 1);
    c.classes = j.value("classes", 10);
  } catch (const json::exception& e) {
    throw InputError(path, std::string("model config in __metadata__ is not valid: ") + e.what());
  }
  try {
    c.validate();
  } catch (const UsageError& e) {
    throw InputError(path, std::string("model config: ") + e.what());
  }
  return c;
}

std::vector<std::string> MnistModel::tokens() const {
  std::vector<std::string> t;
  if (cfg_.arch == "vit") t.push_back("CLS");
  for (int r = 0; r < cfg_.grid(); ++r)
    for (int c = 0; c < cfg_.grid(); ++c) t.push_back(fmt::format("p{}_{}", r, c));
  return t;
}

std::unique_ptr<MnistModel> make_mnist_model(const MnistConfig& cfg, std::uint64_t seed) {
  cfg.validate();
  if (cfg.arch == "pool") return std::make_unique<PoolClassifier>(cfg, seed);
  return std::make_unique<VitModel>(cfg, seed);
}

void save_mnist_model(const std::filesystem::path& path, const MnistModel& model,
                      const std::map<std::string, std::string>& extra) {
  save_model(path, model, extra);
}

std::unique_ptr<MnistModel> load_mnist_model(const std::filesystem::path& path) {
  return load_model_as<MnistModel>(path, "MNIST");
}

Mat image_batch(const ImageSet& set, const std::vector<int>& indices) {
  const int n = set.rows * set.cols;
  Mat x(static_cast<Eigen::Index>(indices.size()), n);  // [B, rows*cols]
  for (size_t i = 0; i < indices.size(); ++i) x.row(static_cast<Eigen::Index>(i)) = ConstMatMap(set.image(indices[i]), 1, n);
  return x;
}

namespace {
void check_set(const MnistModel& model, const ImageSet& set, const std::string& what) {
  const auto& c = model.config();
  if (set.rows != c.image || set.cols != c.image)
    throw InputError(what, fmt::format("images are {}x{} but the model expects {}x{}", set.rows, set.cols, c.image,
                                       c.image));
}
}  // namespace

std::vector<double> MnistEvalResult::per_class_accuracy() const {
  std::vector<double> acc;
  for (const auto& row : confusion) {
    long total = 0;
    for (long v : row) total += v;
    acc.push_back(total ? static_cast<double>(row[acc.size()]) / total : 0.0);
  }
  return acc;
}

MnistEvalResult evaluate_mnist(MnistModel& model, const ImageSet& set, int batch) {
  check_set(model, set, "evaluation set");
  MnistEvalResult r;
  r.count = set.count;
  r.confusion.assign(10, {});
  r.predictions.resize(set.count);
  r.probabilities.resize(set.count);
  // Batches in parallel, one model replica per thread (forward only, so replicas are copies).
  const int threads = std::max(1, std::min(omp_get_max_threads(), (set.count + batch - 1) / batch));
  omp_set_max_active_levels(1);
  std::vector<std::unique_ptr<MnistModel>> replicas;
  for (int t = 1; t < threads; ++t) {
    replicas.push_back(make_mnist_model(model.config(), 0));
    const auto& src = model.params().params();
    const auto& dst = replicas.back()->params().params();
    for (size_t i = 0; i < src.size(); ++i) dst[i]->value = src[i]->value;
  }
  const int nb = (set.count + batch - 1) / batch;
  std::vector<double> batch_loss(nb, 0.0);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int bi = 0; bi < nb; ++bi) {
    const int tid = omp_get_thread_num();
    MnistModel& m = tid == 0 ? model : *replicas[tid - 1];
    const int start = bi * batch, n = std::min(batch, set.count - start);
    std::vector<int> idx(n), targets(n);
    for (int i = 0; i < n; ++i) idx[i] = start + i, targets[i] = set.labels[start + i];
    Mat logits = m.forward(image_batch(set, idx));  // [n, classes]
    batch_loss[bi] = nn::softmax_cross_entropy(logits, targets).loss * n;
    for (int i = 0; i < n; ++i) {
      Eigen::Index p;
      float mx = logits.row(i).maxCoeff(&p);
      double z = (logits.row(i).array() - mx).exp().sum();
      r.predictions[start + i] = static_cast<int>(p);
      r.probabilities[start + i] = static_cast<float>(1.0 / z);
    }
  }
  double loss_sum = 0;
  for (double l : batch_loss) loss_sum += l;
  for (int i = 0; i < set.count; ++i) {
    r.confusion[set.labels[i]][r.predictions[i]] += 1;
    if (r.predictions[i] == set.labels[i]) ++r.correct;
  }
  r.loss = set.count ? loss_sum / set.count : 0;
  r.set("accuracy", r.accuracy());
  r.set("loss", r.loss);
  return r;
}

std::vector<int> select_examples(const ImageSet& set, const ExampleSelection& sel, const std::vector<int>& predictions) {
  const bool wrong = sel.misclassified > 0;
  if (wrong && static_cast<int>(predictions.size()) != set.count)
    throw std::invalid_argument("select_examples: misclassified images need one prediction per image");
  const int n = wrong ? sel.misclassified : sel.first;
  std::vector<int> idx;
  for (int i = 0; i < set.count && static_cast<int>(idx.size()) < n; ++i)
    if ((sel.klass < 0 || set.labels[i] == sel.klass) && (!wrong || predictions[i] != set.labels[i])) idx.push_back(i);
  if (idx.empty()) throw UsageError("no images match the selection");
  return idx;
}

std::vector<AttentionRecord> record_mnist(MnistModel& model, const ImageSet& set, const std::vector<int>& indices,
                                          const std::string& model_name, const RecordOptions& what, int explain_class) {
  check_set(model, set, "recorded set");
  if (explain_class < -1 || explain_class >= model.config().classes)
    throw UsageError(fmt::format("class to explain {} out of range [0, {})", explain_class, model.config().classes));
  for (int i : indices)
    if (i < 0 || i >= set.count)
      throw UsageError(fmt::format("image index {} out of range (the set has {} images)", i, set.count));
  const auto& cfg = model.config();
  const auto tokens = model.tokens();
  std::vector<AttentionRecord> out;
  const int chunk = 64;
  for (size_t start = 0; start < indices.size(); start += chunk) {
    std::vector<int> idx(indices.begin() + static_cast<long>(start),
                         indices.begin() + static_cast<long>(std::min(indices.size(), start + chunk)));
    const int n = static_cast<int>(idx.size());
    AttentionCollector sink(true, what.norms, what.mixing);   // weights in forward, their gradients in backward
    Mat logits = model.forward(image_batch(set, idx), &sink);  // [n, classes]
    // d(explained logit)/d(everything): one-hot rows (samples are independent in a batch); the same
    // rows seed the LRP relevance.
    Mat d = Mat::Zero(n, logits.cols());
    std::vector<int> pred(n);
    std::vector<float> prob(n);
    for (int i = 0; i < n; ++i) {
      Eigen::Index p;
      float mx = logits.row(i).maxCoeff(&p);
      pred[i] = static_cast<int>(p);
      prob[i] = static_cast<float>(1.0 / (logits.row(i).array() - mx).exp().sum());
      d(i, explain_class >= 0 ? explain_class : p) = 1.f;
    }
    model.params().zero_grad();
    model.backward(d, &sink);
    model.params().zero_grad();
    const bool relevance = model.relevance(d).size() > 0;
    for (int i = 0; i < n; ++i) {
      AttentionRecord r;
      r.tensors = model.attention(i);
      r.gradients = model.attention_grads(i);
      r.relevance = model.attention_relevance(i);
      r.tokens["tokens"] = tokens;
      if (cfg.arch == "pool") r.tokens["query"] = {"query"};
      RecordImage im;
      im.height = set.rows;
      im.width = set.cols;
      im.pixels.assign(set.image(idx[i]), set.image(idx[i]) + static_cast<size_t>(set.rows) * set.cols);
      im.patch_rows = im.patch_cols = cfg.grid();
      im.prefix_tokens = cfg.arch == "vit" ? 1 : 0;
      r.image = std::move(im);
      r.metadata["model"] = model_name.empty() ? "mnist-" + cfg.arch : model_name;
      r.metadata["arch"] = cfg.arch;
      r.metadata["attention"] = cfg.arch == "vit" ? "scaled-dot" : "additive";
      r.metadata["index"] = std::to_string(idx[i]);
      r.metadata["label"] = std::to_string(set.labels[idx[i]]);
      r.metadata["prediction"] = std::to_string(pred[i]);
      r.metadata["probability"] = fmt::format("{:.6f}", prob[i]);
      const int explained = explain_class >= 0 ? explain_class : pred[i];
      r.metadata["explained"] = std::to_string(explained);
      r.metadata["gradients"] = r.gradients.empty() ? "none" : fmt::format("d(logit {})/d(attention)", explained);
      if (relevance)
        r.metadata["relevance"] = fmt::format("LRP of logit {} (Chefer et al. 2021: alpha=1 beta=0 linear, "
                                              "normalised adds and products)", explained);
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace attnviz::models
