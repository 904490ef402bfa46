// The demo's shared state: output folder, settings, and the gallery each demo section adds to.
#pragma once
#include <attnviz/render/gallery.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace attnviz::cli {

using render::GalleryItem;   // {section, title, caption, image, links}

struct DemoContext {
  std::filesystem::path out;       // gallery folder
  std::filesystem::path models;    // where trained models are kept and reused (out/models)
  bool quick = false;
  std::filesystem::path lm_model;  // --model: a GGUF / minGPT file for the LLM section (empty: look for stories260K)
  std::vector<GalleryItem> items;
  std::vector<std::string> notes;  // lines for the summary at the end (accuracies, timings)
};

// Sections, each in its own file; each renders into ctx.out and appends to ctx.items.
void demo_samples(DemoContext& ctx);    // demo_samples.cpp (renderer)
void demo_mnist(DemoContext& ctx);      // demo_mnist.cpp
void demo_translate(DemoContext& ctx);  // demo_translate.cpp
void demo_textcls(DemoContext& ctx);    // demo_textcls.cpp
void demo_lm(DemoContext& ctx);         // cmd_demo_lm.cpp (a note instead when no model is found)

}  // namespace attnviz::cli
