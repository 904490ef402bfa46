// `attnviz render text INPUT -o OUT.{png,svg,pdf,html}`: sentences with each token shaded by its weight.
#include "cli/commands.hpp"
#include "cli/input_options.hpp"

#include <attnviz/analysis/saliency.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/render/render.hpp>
#include <attnviz/render/text_view.hpp>

#include <fmt/core.h>

#include <memory>

namespace attnviz::cli {

void add_render_text(CLI::App& parent) {
  struct Opts {
    std::string input, out;
    ImportOptions import;
    render::TextSelection sel;
    render::TextViewOptions view;
    render::PaintOptions paint;
    std::string norm = "sentence", method;
    std::vector<int> samples;
    int max_items = 12;
    bool no_reverse = false, no_fade = false, minus_identity = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("text", "sentences as wrapped text, each token shaded by its attention weight");
  sub->add_option("input", o->input, "record file (e.g. from 'record textcls'; every sample is drawn)")->required();
  sub->add_option("-o,--out", o->out, "output: .png, .svg, .pdf, or .html (hover a token to see its weight)")
      ->required();
  add_import_options(sub, o->import);
  sub->add_option("--samples", o->samples, "which samples of a multi-sample file (default: the first --max)")
      ->delimiter(',');
  sub->add_option("--max", o->max_items, "at most this many sentences per figure")->check(positive_number());
  auto* sub_tensor = sub->add_option("--tensor", o->sel.tensor,
                                     "tensor whose weights shade the tokens (default: pool, or the only tensor)");
  sub->add_option("--head", o->sel.head, "head of that tensor (-1 = mean over heads)");
  sub->add_option("--query", o->sel.query, "query row (0 = the pooling query, or [CLS] in a self-attention tensor)");
  sub->add_option("--method", o->method,
                  "shade by a saliency over the stacked self-attention layers instead of one tensor: " +
                      saliency_method_list() +
                      " (chefer and grad-rollout need a record made with --record relevance); the [CLS] token of "
                      "a classifier's tokens_cls axis is left out");
  sub->add_flag("--minus-identity", o->minus_identity,
                "for a rolled-out relevance row (decoder.relevance, decoder.lrp_relevance: R = (I + A_L) ... "
                "(I + A_1), the token's own entry >= 1): subtract the identity's 1 from the query token's entry, so "
                "that the relevance mixed in from the tokens sets the scale (needs a square tokens x tokens tensor)");
  sub->add_option("--cmap", o->view.cmap, "colormap (magma, viridis, inferno, plasma, cividis, gray, coolwarm)");
  sub->add_flag("--no-reverse", o->no_reverse, "high weights take the colormap's high end instead of its low end");
  sub->add_flag("--no-fade", o->no_fade, "use the plain colormap (low weights are not faded to white)");
  sub->add_option("--norm", o->norm, "sentence (each sentence to its own max), global (one max), none (raw 0..1)")
      ->check(CLI::IsMember({"sentence", "global", "none"}));
  sub->add_option("--width", o->view.width, "text column width in points")->check(CLI::Range(120.0, 4000.0));
  sub->add_option("--font-size", o->view.font_size, "token font size in points")->check(CLI::Range(4.0, 72.0));
  sub->add_option("--title", o->view.title, "figure title");
  sub->add_option("--scale", o->paint.scale, "PNG pixels per point")->check(CLI::Range(0.1, 16.0));
  set_example(sub, "attnviz render text texts.safetensors -o texts.png   # or -o texts.html");
  sub->callback([o, sub_tensor] {
    std::string ext = std::filesystem::path(o->out).extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext != ".png" && ext != ".svg" && ext != ".pdf" && ext != ".html" && ext != ".htm")
      throw UsageError("render text: output must end in .png, .svg, .pdf or .html, not '" + o->out + "'");
    if (o->minus_identity && !o->method.empty())
      throw UsageError("render text: --minus-identity applies to a --tensor row, not to --method");
    o->view.norm = render::parse_text_norm(o->norm);
    o->view.reverse = !o->no_reverse;
    o->view.fade = !o->no_fade;
    auto records = import_records(o->input, o->import);
    // Without --tensor: "pool" (textcls records), else the only tensor of an imported file.
    if (sub_tensor->count() == 0 && !records.empty() && !records[0].find(o->sel.tensor) &&
        records[0].tensors.size() == 1)
      o->sel.tensor = records[0].tensors[0].name;
    std::vector<int> pick = o->samples;
    if (pick.empty())
      for (int i = 0; i < static_cast<int>(records.size()) && i < o->max_items; ++i) pick.push_back(i);
    std::vector<render::TextViewItem> items;
    for (int s : pick) {
      if (s < 0 || s >= static_cast<int>(records.size()))
        throw UsageError(fmt::format("render text: sample {} out of range ({} has {})", s, o->input, records.size()));
      if (o->method.empty()) {
        items.push_back(render::text_item(records[s], o->sel));
        o->view.quantity = render::value_quantity(o->sel.tensor);   // norms, mixing, relevance name themselves
        if (o->minus_identity) {
          const AttentionTensor* t = records[s].find(o->sel.tensor);
          if (t->queries != t->keys || t->query_axis != t->key_axis)
            throw UsageError(fmt::format("render text: --minus-identity needs a square tensor over one token axis; "
                                         "'{}' is [{} x {}] ({} x {})",
                                         t->name, t->queries, t->keys, t->query_axis, t->key_axis));
          items.back().weights[o->sel.query] -= 1.f;
          o->view.quantity = (o->view.quantity.empty() ? "weight" : o->view.quantity) + " − I";
        }
        continue;
      }
      SaliencyOptions so;
      so.method = parse_saliency_method(o->method);
      so.query = o->sel.query;
      so.head = o->sel.head;
      const auto layers = self_attention_layers(records[s], "", o->input);
      render::TextSelection sel = o->sel;
      sel.tensor = layers.front()->name;   // tokens, label and prediction; the weights are replaced
      render::TextViewItem item = render::text_item(records[s], sel);
      const std::vector<float> sal = token_saliency(records[s], so, o->input);
      item.weights.assign(sal.begin(), sal.end());
      if (layers.front()->key_axis == "tokens_cls" && !item.tokens.empty()) {   // [CLS] first: not a word
        item.tokens.erase(item.tokens.begin());
        item.weights.erase(item.weights.begin());
      }
      item.note += (item.note.empty() ? "" : " · ") + o->method;
      o->view.quantity = o->method + " saliency";
      items.push_back(std::move(item));
    }
    if (items.empty()) throw InputError(o->input, "no samples to draw");
    render::render_text(items, o->view, o->out, o->paint);
    fmt::print("wrote {} ({} sentence(s))\n", o->out, items.size());
  });
}

}  // namespace attnviz::cli
