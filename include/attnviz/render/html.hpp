// The interactive HTML view of a record: one self-contained, offline page (inline JS + CSS from
// render/html/, the record's weights quantized and deflate-packed inside) with head, model, matrix,
// text and image views.
#pragma once
#include <attnviz/record/record.hpp>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace attnviz::render {

// An extra image overlay computed by the caller (e.g. attention rollout; render cannot see the
// analysis layer): values on the record's patch grid, [rows * cols], row-major.
struct HtmlImageMap {
  std::string name;
  int rows = 0, cols = 0;
  std::vector<float> values;
};

struct HtmlOptions {
  std::string title;              // page title ("" = the source file name, else "attention")
  std::string source;             // shown in the header (the input's file name)
  int bits = 8;                   // bits per stored weight: 8 or 16 (per-head affine quantization)
  double max_mib = 64;            // limit of the page size; full matrices past it are left out
  std::string cmap = "viridis";   // colormap of every matrix view
  std::vector<HtmlImageMap> image_maps;  // extra overlays for the image view
  int thumb = 48;                 // model-view thumbnails: at most thumb x thumb cells (mean-pooled)
};

// What went into the page.
struct HtmlReport {
  std::size_t bytes = 0;                 // size of the page
  std::size_t data_bytes = 0;            // of which: packed weights (base64)
  std::size_t values = 0;                // weights stored in full
  std::vector<std::string> left_out;     // one line per tensor whose full matrix was left out
};

// The page as a string. Throws UsageError for bits other than 8/16, max_mib <= 0 or a limit too
// small for even the thumbnails, InputError(path) for a record that does not validate.
std::string html_page(const AttentionRecord& record, const HtmlOptions& opt, HtmlReport* report = nullptr);

// Writes the page to `out` atomically and returns what went in.
HtmlReport render_html(const AttentionRecord& record, const HtmlOptions& opt, const std::filesystem::path& out);

// Quantization used by the page, exposed for tests: value v of a head with range [lo, hi] becomes
// round(sqrt((v - lo) / (hi - lo)) * (levels - 2)) with levels = 2^bits; the top code (levels - 1)
// marks NaN/Inf. lo = min(0, finite minimum), hi = finite maximum. The square root keeps the small
// weights of long rows (1/512 of a head whose peak is 0.5 is code 16 of 254, not 0); the error is at
// most (hi - lo) / (levels - 2) at the top and (hi - lo) / (levels - 2)^2 near zero.
struct HeadRange {
  float lo = 0, hi = 1;
};
HeadRange head_range(const float* v, std::size_t n);
unsigned quantize(float v, HeadRange r, int bits);
float dequantize(unsigned code, HeadRange r, int bits);  // NaN for the top code

}  // namespace attnviz::render
