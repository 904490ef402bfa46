// The one training loop: seeded batches, Adam, schedule, clipping, checkpoints, exact resume.
#include <attnviz/error.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/train/trainer.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <numeric>

namespace attnviz::train {

using json = nlohmann::json;

std::vector<std::vector<int>> TrainTask::batches(int epoch, std::uint64_t seed, int batch) const {
  std::vector<int> order(static_cast<size_t>(examples()));
  std::iota(order.begin(), order.end(), 0);
  nn::Rng rng = nn::Rng(seed).fork(1000003ull * static_cast<std::uint64_t>(epoch + 1));
  rng.shuffle(order);
  return split_batches(order, batch);
}

std::vector<std::vector<int>> split_batches(const std::vector<int>& order, int batch) {
  std::vector<std::vector<int>> out;
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(batch))
    out.emplace_back(order.begin() + static_cast<long>(i),
                     order.begin() + static_cast<long>(std::min(order.size(), i + static_cast<size_t>(batch))));
  return out;
}

namespace {

// The trainer's own options that must agree between a checkpoint and the run resuming it.
std::map<std::string, std::string> full_recipe(const TrainerOptions& o, long examples) {
  auto r = o.recipe;
  auto num = [](double v) { return json(v).dump(); };
  r["--epochs"] = std::to_string(o.epochs);
  r["--batch"] = std::to_string(o.batch);
  r["--lr"] = num(o.lr);
  r["--min-lr"] = num(o.min_lr);
  r["--warmup"] = std::to_string(o.warmup_steps);
  r["--constant-lr"] = o.constant_lr ? "true" : "false";
  r["--weight-decay"] = num(o.adam.weight_decay) + (o.adam.decoupled ? " (AdamW)" : " (Adam)");
  r["--clip"] = num(o.clip);
  r["--seed"] = std::to_string(o.seed);
  r["training examples"] = std::to_string(examples);
  return r;
}

std::string option_of_config_key(const std::string& key) {
  std::string s = "--" + key;
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

// Refuses a checkpoint of another model or recipe, naming the first option that differs.
void check_resume(const StFile& f, const models::Model& model, const std::map<std::string, std::string>& recipe,
                  const std::string& path) {
  auto meta = [&](const std::string& k) -> const std::string& {
    auto it = f.metadata.find(k);
    if (it == f.metadata.end()) throw InputError(path, "not a training checkpoint (no '" + k + "' in __metadata__)");
    return it->second;
  };
  if (meta("attnviz.model") != model.kind())
    throw InputError(path, "checkpoint is a " + meta("attnviz.model") + " model, this run trains a " + model.kind());
  if (meta("attnviz.config") != model.config_json()) {
    json a, b;
    try {
      a = json::parse(meta("attnviz.config"));
      b = json::parse(model.config_json());
    } catch (const json::exception& e) {
      throw InputError(path, std::string("checkpoint config is not JSON: ") + e.what());
    }
    for (auto it = b.begin(); it != b.end(); ++it) {
      const std::string there = a.contains(it.key()) ? a[it.key()].dump() : "(none)";
      if (there != it.value().dump())
        throw InputError(path, fmt::format("checkpoint is of a different model: {} was {} there, {} in this run; "
                                           "resume with the same options",
                                           option_of_config_key(it.key()), there, it.value().dump()));
    }
    throw InputError(path, "checkpoint is of a different model (" + meta("attnviz.config") + ")");
  }
  std::map<std::string, std::string> saved;
  try {
    saved = json::parse(meta("train.recipe")).get<std::map<std::string, std::string>>();
  } catch (const json::exception& e) {
    throw InputError(path, std::string("checkpoint training recipe is unreadable: ") + e.what());
  }
  for (const auto& [k, v] : recipe) {
    auto it = saved.find(k);
    const std::string there = it == saved.end() ? "(not set)" : it->second;
    if (there != v)
      throw InputError(path, fmt::format("checkpoint was trained with other options: {} was {} there, {} in this run; "
                                         "resume with the same options", k, there, v));
  }
  for (const auto& [k, v] : saved)
    if (!recipe.count(k))
      throw InputError(path, fmt::format("checkpoint was trained with other options: {} was {} there, not set in this "
                                         "run; resume with the same options", k, v));
}

json metrics_json(const models::EvalResult& r) {
  json m = json::array();
  for (const auto& [k, v] : r.metrics) m.push_back({k, v});
  return m;
}

}  // namespace

TrainResult train(models::Model& model, TrainTask& task, const TrainerOptions& opt, const Callbacks& cb) {
  if (opt.batch <= 0 || opt.epochs <= 0) throw UsageError("--batch and --epochs must be positive");
  if (!(opt.lr > 0) || !std::isfinite(opt.lr)) throw UsageError("--lr must be positive");
  if (opt.checkpoint_every < 0) throw UsageError("--checkpoint-every must be >= 0");
  const long n = task.examples();
  if (n <= 0) throw UsageError("no training examples");
  const long steps_per_epoch = static_cast<long>(task.batches(0, opt.seed, opt.batch).size());
  nn::ScheduleOptions sched;
  sched.base_lr = opt.lr;
  sched.min_lr = opt.min_lr;
  sched.warmup_steps = static_cast<int>(opt.warmup_steps);
  sched.total_steps = static_cast<int>(opt.epochs * steps_per_epoch);
  auto lr_at = [&](long global) { return opt.constant_lr ? opt.lr : nn::warmup_cosine(global, sched); };

  nn::AdamOptions ao = opt.adam;
  ao.lr = opt.lr;
  nn::Adam adam(model.params(), ao);
  const auto recipe = full_recipe(opt, n);
  const std::string recipe_text = json(recipe).dump();

  TrainResult result;
  int first_epoch = 0;
  long first_step = 0;   // within first_epoch
  double part_loss = 0, part_seconds = 0;
  long part_correct = 0, part_seen = 0;
  if (!opt.resume.empty()) {
    const std::string path = opt.resume.string();
    StFile f = load_safetensors(opt.resume);
    check_resume(f, model, recipe, path);
    model.upgrade_tensors(f);
    models::load_parameters(model.params(), f, path);
    adam.load_from(f, path);
    try {
      json st = json::parse(f.metadata.at("train.state"));
      first_epoch = st.at("epoch");
      first_step = st.at("step");
      part_loss = st.at("loss_sum");
      part_correct = st.at("correct");
      part_seen = st.at("seen");
      part_seconds = st.at("seconds");
      for (const auto& e : st.at("history")) {
        EpochInfo ei;
        ei.epoch = e.at("epoch");
        ei.train_loss = e.at("train_loss");
        ei.train_accuracy = e.at("train_accuracy");
        ei.seconds = e.at("seconds");
        ei.samples_per_second = e.at("samples_per_second");
        for (const auto& m : e.at("eval")) ei.eval.set(m.at(0).get<std::string>(), m.at(1).get<double>());
        result.epochs.push_back(ei);
      }
    } catch (const std::exception& e) {
      throw InputError(path, std::string("checkpoint training state is unreadable: ") + e.what());
    }
    if (first_epoch < 0 || first_step < 0 || first_step > steps_per_epoch || adam.steps() < 0)
      throw InputError(path, "checkpoint training state is out of range");
  }
  if (cb.on_start) cb.on_start(first_epoch, first_step);

  auto write_checkpoint = [&](int epoch, long step, double loss_sum, long correct, long seen, double seconds) {
    if (opt.checkpoint.empty()) return;
    StFile state;
    adam.save_into(state);
    json hist = json::array();
    for (const auto& e : result.epochs)
      hist.push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"train_accuracy", e.train_accuracy},
                      {"seconds", e.seconds}, {"samples_per_second", e.samples_per_second},
                      {"eval", metrics_json(e.eval)}});
    models::SaveModelOptions so;
    so.metadata = opt.metadata;
    so.metadata["train.recipe"] = recipe_text;
    so.metadata["train.state"] = json{{"epoch", epoch}, {"step", step}, {"loss_sum", loss_sum}, {"correct", correct},
                                      {"seen", seen}, {"seconds", seconds}, {"history", hist}}
                                     .dump();
    so.metadata["train.epochs_done"] = std::to_string(epoch);
    so.extra_tensors = &state;
    models::save_model(opt.checkpoint, model, so);   // atomic: temp file, then rename
  };

  using Clock = std::chrono::steady_clock;
  double run_samples = 0;
  bool stop = false;
  for (int epoch = first_epoch; epoch < opt.epochs && !stop; ++epoch) {
    const auto batches = task.batches(epoch, opt.seed, opt.batch);
    const long steps = static_cast<long>(batches.size());
    const bool resumed_here = epoch == first_epoch && first_step > 0;
    double loss_sum = resumed_here ? part_loss : 0, seconds = resumed_here ? part_seconds : 0;
    long correct = resumed_here ? part_correct : 0, seen = resumed_here ? part_seen : 0, seen_now = 0;
    auto t0 = Clock::now();
    for (long s = resumed_here ? first_step : 0; s < steps; ++s) {
      const long global = adam.steps();
      if (opt.max_steps > 0 && global >= opt.max_steps) {
        stop = true;
        break;
      }
      model.params().zero_grad();
      nn::Rng rng = nn::Rng(opt.seed).fork(0xA06ull << 32 | static_cast<std::uint64_t>(global));
      StepResult r = task.step(batches[s], rng);
      if (!std::isfinite(r.loss))
        throw TrainingDiverged(fmt::format(
            "training stopped: the loss became {} at epoch {}, step {}{}", r.loss, epoch + 1, s + 1,
            opt.checkpoint.empty() ? std::string(" (no checkpoint was requested)")
                                   : "; the last checkpoint written (" + opt.checkpoint.string() + ") is kept"));
      if (opt.clip > 0) nn::clip_grad_norm(model.params(), opt.clip);
      const float lr = lr_at(global);
      adam.step(lr);
      ++result.steps;
      loss_sum += r.loss * static_cast<double>(r.count);
      correct += r.correct;
      seen += r.count;
      seen_now += static_cast<long>(batches[s].size());
      if (cb.on_step) {
        StepInfo si;
        si.epoch = epoch;
        si.step = s + 1;
        si.steps = steps;
        si.global_step = adam.steps();
        si.samples = seen;
        si.loss = seen ? loss_sum / seen : 0;
        si.accuracy = seen ? static_cast<double>(correct) / seen : 0;
        si.lr = lr;
        cb.on_step(si);
      }
      if (opt.checkpoint_every > 0 && adam.steps() % opt.checkpoint_every == 0 && s + 1 < steps)
        write_checkpoint(epoch, s + 1, loss_sum, correct, seen,
                         seconds + std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const double now = std::chrono::duration<double>(Clock::now() - t0).count();
    EpochInfo ei;
    ei.epoch = epoch;
    ei.seconds = seconds + now;
    ei.samples_per_second = now > 0 ? seen_now / now : 0;
    ei.train_loss = seen ? loss_sum / seen : 0;
    ei.train_accuracy = seen ? static_cast<double>(correct) / seen : 0;
    result.seconds += now;
    run_samples += seen_now;
    if (stop && seen_now == 0 && !resumed_here) break;   // max_steps reached exactly at an epoch end
    ei.eval = task.evaluate();
    result.epochs.push_back(ei);
    write_checkpoint(epoch + 1, 0, 0, 0, 0, 0);
    if (cb.on_epoch) cb.on_epoch(ei);
    if (opt.max_steps > 0 && adam.steps() >= opt.max_steps) stop = true;
  }
  result.samples_per_second = result.seconds > 0 ? run_samples / result.seconds : 0;
  return result;
}

}  // namespace attnviz::train
