// The parent commands `train`, `eval`, `record`, `bench` and `corpus`: a name, one help line, an
// example, and the functions (one per domain, in the cmd_*.cpp files) that add the subcommands.
#include "cli/commands.hpp"

namespace attnviz::cli {

CLI::App* add_group(CLI::App& app, const std::string& name, const std::string& help, const std::string& example,
                    std::initializer_list<void (*)(CLI::App&)> children) {
  auto* sub = app.add_subcommand(name, help);
  sub->require_subcommand(1);
  set_example(sub, example);
  for (auto add : children) add(*sub);
  return sub;
}

void add_train(CLI::App& app) {
  add_group(app, "train", "train a model (progress bar, checkpoints, --resume)",
            "attnviz train mnist --epochs 3 --out models/vit.safetensors",
            {add_train_mnist, add_train_translate, add_train_textcls});
}

void add_eval(CLI::App& app) {
  add_group(app, "eval", "evaluate a model: accuracy, BLEU, AER, saliency faithfulness, as a table or --json",
            "attnviz eval mnist --model models/vit.safetensors --json",
            {add_eval_mnist, add_eval_translate, add_eval_saliency, add_eval_textcls});
}

void add_record(CLI::App& app) {
  add_group(app, "record", "run a model on inputs and save an AttentionRecord",
            "attnviz record mnist --model models/vit.safetensors --index 0,7,42 -o digits.safetensors",
            {add_record_mnist, add_record_translate, add_record_textcls, add_record_hf});
}

void add_bench(CLI::App& app) {
  add_group(app, "bench", "measure throughput: attention kernels, training, rendering, language models",
            "attnviz bench kernels --json",
            {add_bench_kernels, add_bench_train, add_bench_render, add_bench_lm, add_bench_encoder});
}

void add_corpus(CLI::App& app) {
  add_group(app, "corpus", "write a built-in dataset (parallel corpus, fortunes) as TSV",
            "attnviz corpus translate --synthetic 1000 -o corpus.tsv", {add_corpus_translate, add_corpus_textcls});
}

}  // namespace attnviz::cli
