// Attention over training: one frame per snapshot record on a shared colour scale.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

namespace attnviz::render {

std::string evolution_frame_title(const AttentionRecord& r, size_t k) {
  auto get = [&](const char* key) {
    auto it = r.metadata.find(key);
    return it == r.metadata.end() ? std::string() : it->second;
  };
  const std::string step = get("step"), epoch = get("epoch");
  if (step.empty()) return fmt::format("snapshot {}", k);
  // The snapshot of step 0 is taken before the first update: no epoch has run (older files say
  // epoch 1 for it, the epoch it preceded).
  if (step == "0") return "step 0 · before training";
  return epoch.empty() ? "step " + step : fmt::format("step {} · epoch {}", step, epoch);
}

std::vector<DrawList> evolution_frames(const std::vector<AttentionRecord>& snaps, const EvolutionOptions& opt) {
  if (snaps.empty()) throw UsageError("no snapshots to draw");
  const bool vision = snaps.front().image.has_value();
  // Every snapshot's matrix first: the colour scale spans all of them.
  std::vector<LabelledMatrix> mats;
  std::vector<Mat> maps;
  for (const auto& r : snaps) {
    if (vision) {
      if (!r.image) throw UsageError("the snapshots mix records with and without an image");
      maps.push_back(opt.map ? opt.map(r) : patch_map(r, opt.overlay));
      if (maps.back().rows() != maps.front().rows() || maps.back().cols() != maps.front().cols())
        throw UsageError("the snapshots' maps change shape");
    } else {
      mats.push_back(select_matrix(r, opt.sel));
      if (mats.back().values.rows() != mats.front().values.rows() || mats.back().values.cols() != mats.front().values.cols())
        throw UsageError("the snapshots' matrices change shape");
    }
  }
  std::vector<const Mat*> all;
  for (const auto& m : maps) all.push_back(&m);
  for (const auto& m : mats) all.push_back(&m.values);
  const ValueRange range = value_range(all, {});
  ScaleOptions fixed;
  fixed.vmin = range.vmin, fixed.vmax = range.vmax;

  std::vector<DrawList> frames;
  for (size_t k = 0; k < snaps.size(); ++k) {
    if (vision) {
      OverlayOptions ov;
      ov.cmap = opt.cmap.empty() ? "inferno" : opt.cmap;
      ov.scale = fixed;
      ov.shared_scale = true;
      ov.colorbar = true;
      ov.panel = opt.panel;
      ov.title = evolution_frame_title(snaps[k], k);
      frames.push_back(layout_overlay({OverlayPanel{*snaps[k].image, maps[k], "", kBlack}}, ov));
    } else {
      HeatmapOptions h;
      h.cmap = opt.cmap.empty() ? "viridis" : opt.cmap;
      h.scale = fixed;
      h.title = evolution_frame_title(snaps[k], k) + " · " + mats[k].title;
      h.values_max_size = 0;
      frames.push_back(layout_heatmap(mats[k], h));
    }
  }
  return frames;
}

}  // namespace attnviz::render
