// The interactive HTML page of a record: metadata as JSON, weights quantized per head and
// deflate-packed into base64 chunks, and the view code (render/html/view.js, view.css) compiled in.
#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/render/colormap.hpp>
#include <attnviz/render/escape.hpp>
#include <attnviz/render/html.hpp>

#include "html_assets.hpp"  // generated at build time from render/html/ (render/html/embed.cmake)

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace attnviz::render {

namespace {

using nlohmann::json;
constexpr double kMiB = 1024.0 * 1024.0;

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 2 < bytes.size(); i += 3) {
    std::uint32_t v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t v = b[i] << 16;
    if (i + 1 < bytes.size()) v |= b[i + 1] << 8;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// zlib stream (RFC 1950), what the browser's DecompressionStream("deflate") reads.
std::string deflate(const std::string& bytes) {
  uLongf cap = compressBound(static_cast<uLong>(bytes.size()));
  std::string out(cap, '\0');
  int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &cap, reinterpret_cast<const Bytef*>(bytes.data()),
                     static_cast<uLong>(bytes.size()), 1);  // level 1: 4x faster than 6, 4% larger
  if (rc != Z_OK) throw InputError("html", fmt::format("zlib compress2 failed ({})", rc));
  out.resize(cap);
  return out;
}

// JSON safe inside <script>: every '<' escaped, invalid UTF-8 replaced.
std::string script_json(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

void put_code(std::string& out, unsigned code, int bits) {
  out += static_cast<char>(code & 0xFF);
  if (bits == 16) out += static_cast<char>((code >> 8) & 0xFF);  // little-endian, as JS Uint16Array reads it
}

// Mean-pooled thumbnail of one head, [th, tw], each scaled to its own maximum in 0..255 (a
// non-finite cell makes its bin 255 so it is not hidden).
void append_thumb(std::string& out, const AttentionTensor& t, int h, int th, int tw) {
  std::vector<double> sum(static_cast<size_t>(th) * tw, 0.0);
  std::vector<int> cnt(sum.size(), 0);
  std::vector<char> bad(sum.size(), 0);
  for (int q = 0; q < t.queries; ++q) {
    int r = static_cast<int>(static_cast<long>(q) * th / t.queries);
    for (int k = 0; k < t.keys; ++k) {
      int c = static_cast<int>(static_cast<long>(k) * tw / t.keys);
      float v = t.at(h, q, k);
      size_t i = static_cast<size_t>(r) * tw + c;
      if (!std::isfinite(v)) bad[i] = 1;
      else sum[i] += v, ++cnt[i];
    }
  }
  double lo = 0, hi = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    if (cnt[i]) sum[i] /= cnt[i];
    lo = std::min(lo, sum[i]);
    hi = std::max(hi, sum[i]);
  }
  for (size_t i = 0; i < sum.size(); ++i) {
    int code = bad[i] ? 255 : (hi > lo ? static_cast<int>(std::lround((sum[i] - lo) / (hi - lo) * 254)) : 0);
    out += static_cast<char>(code);
  }
}

struct Chunk {
  std::string id, b64;
};

std::string asset(const unsigned char* p, size_t n) { return std::string(reinterpret_cast<const char*>(p), n); }

}  // namespace

HeadRange head_range(const float* v, std::size_t n) {
  float lo = 0, hi = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) continue;
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  if (!(hi > lo)) hi = lo + 1;  // all equal (or none finite): any positive span decodes exactly
  return {lo, hi};
}

unsigned quantize(float v, HeadRange r, int bits) {
  const unsigned top = (1u << bits) - 1;
  if (!std::isfinite(v)) return top;
  double t = (static_cast<double>(v) - r.lo) / (static_cast<double>(r.hi) - r.lo);
  t = std::clamp(t, 0.0, 1.0);
  return static_cast<unsigned>(std::lround(std::sqrt(t) * (top - 1)));
}

float dequantize(unsigned code, HeadRange r, int bits) {
  const unsigned top = (1u << bits) - 1;
  if (code >= top) return NAN;
  double u = static_cast<double>(code) / (top - 1);
  return static_cast<float>(r.lo + (static_cast<double>(r.hi) - r.lo) * u * u);
}

std::string html_page(const AttentionRecord& rec, const HtmlOptions& opt, HtmlReport* report) {
  if (opt.bits != 8 && opt.bits != 16) throw UsageError(fmt::format("--bits must be 8 or 16, not {}", opt.bits));
  if (!(opt.max_mib > 0)) throw UsageError(fmt::format("--max-mib must be positive, not {}", opt.max_mib));
  if (opt.thumb < 4 || opt.thumb > 256) throw UsageError(fmt::format("thumbnail size {} is outside 4..256", opt.thumb));
  const Colormap& cmap = Colormap::get(opt.cmap);
  rec.validate(opt.source.empty() ? "record" : opt.source);
  if (rec.tensors.empty()) throw InputError(opt.source.empty() ? "record" : opt.source, "has no attention tensors to show");

  HtmlReport rep;
  std::vector<Chunk> chunks;
  json meta;
  meta["title"] = opt.title.empty() ? (opt.source.empty() ? std::string("attention") : opt.source) : opt.title;
  meta["source"] = opt.source;
  meta["bits"] = opt.bits;
  meta["metadata"] = rec.metadata;
  meta["tokens"] = rec.tokens;
  json table = json::array();
  for (const auto& c : cmap.table()) table.push_back({c[0], c[1], c[2]});
  meta["cmap"] = {{"name", cmap.name()}, {"table", table}};

  // Thumbnails of every head of every tensor, one chunk (small: at most thumb^2 bytes per head).
  std::string thumbs;
  json tensors = json::array();
  for (const auto& t : rec.tensors) {
    TensorName tn = parse_tensor_name(t.name);
    int th = std::min(t.queries, opt.thumb), tw = std::min(t.keys, opt.thumb);
    json jt = {{"name", t.name},        {"heads", t.heads},         {"queries", t.queries},
               {"keys", t.keys},        {"query_axis", t.query_axis}, {"key_axis", t.key_axis},
               {"stack", tn.stack},     {"layer", tn.layer},        {"kind", tn.kind},
               {"thumb", {{"offset", thumbs.size()}, {"rows", th}, {"cols", tw}}}};
    json ranges = json::array();
    size_t nonfinite = 0;
    const size_t per_head = static_cast<size_t>(t.queries) * t.keys;
    for (int h = 0; h < t.heads; ++h) {
      HeadRange r = head_range(t.data.data() + h * per_head, per_head);
      ranges.push_back({r.lo, r.hi});
      for (size_t i = 0; i < per_head; ++i) nonfinite += !std::isfinite(t.data[h * per_head + i]);
      append_thumb(thumbs, t, h, th, tw);
    }
    jt["ranges"] = ranges;
    jt["nonfinite"] = nonfinite;
    tensors.push_back(jt);
  }
  chunks.push_back({"thumbs", base64(deflate(thumbs))});

  if (rec.image && rec.image->height > 0 && rec.image->width > 0) {
    const RecordImage& im = *rec.image;
    std::string px;
    px.reserve(im.pixels.size());
    for (float v : im.pixels)
      px += static_cast<char>(std::isfinite(v) ? std::lround(std::clamp(v, 0.f, 1.f) * 255) : 0);
    chunks.push_back({"image", base64(deflate(px))});
    json maps = json::array();
    for (const auto& m : opt.image_maps) {
      if (m.rows != im.patch_rows || m.cols != im.patch_cols || m.values.size() != static_cast<size_t>(m.rows) * m.cols)
        throw UsageError(fmt::format("image map '{}' is {}x{}, the record's patch grid is {}x{}", m.name, m.rows,
                                     m.cols, im.patch_rows, im.patch_cols));
      json v = json::array();
      for (float x : m.values) v.push_back(std::isfinite(x) ? json(x) : json(nullptr));
      maps.push_back({{"name", m.name}, {"values", v}});
    }
    meta["image"] = {{"height", im.height}, {"width", im.width}, {"patch_rows", im.patch_rows},
                     {"patch_cols", im.patch_cols}, {"prefix", im.prefix_tokens}, {"maps", maps}};
  }

  // Full matrices, one chunk per tensor, in record order while they fit under the limit.
  const std::string assets = asset(kViewCss, kViewCssSize) + asset(kViewJs, kViewJsSize);
  size_t fixed = assets.size() + 4096;
  for (const auto& c : chunks) fixed += c.b64.size();
  const double limit = opt.max_mib * kMiB;
  size_t meta_guess = 2 * script_json(meta).size() + script_json(tensors).size();
  if (fixed + meta_guess > limit)
    throw UsageError(fmt::format("--max-mib {} is below the {:.2f} MiB the page needs without any full matrix",
                                 opt.max_mib, (fixed + meta_guess) / kMiB));
  size_t used = fixed + meta_guess;
  // Pack every tensor (in parallel: deflate is most of the time), then keep them in record order
  // while they fit under the limit.
  std::vector<std::string> packed(rec.tensors.size());
  std::vector<std::string> failed(rec.tensors.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (long ti = 0; ti < static_cast<long>(rec.tensors.size()); ++ti) {
    try {
      const auto& t = rec.tensors[ti];
      const size_t per_head = static_cast<size_t>(t.queries) * t.keys;
      std::string codes;
      codes.reserve(t.data.size() * (opt.bits / 8));
      for (int h = 0; h < t.heads; ++h) {
        HeadRange r = head_range(t.data.data() + h * per_head, per_head);
        for (size_t i = 0; i < per_head; ++i) put_code(codes, quantize(t.data[h * per_head + i], r, opt.bits), opt.bits);
      }
      packed[ti] = base64(deflate(codes));
    } catch (const std::exception& e) {
      failed[ti] = e.what();
    }
  }
  json left = json::array();
  for (size_t ti = 0; ti < rec.tensors.size(); ++ti) {
    if (!failed[ti].empty()) throw InputError(opt.source.empty() ? "record" : opt.source, failed[ti]);
    const auto& t = rec.tensors[ti];
    std::string& b64 = packed[ti];
    if (used + b64.size() > limit) {
      std::string line = fmt::format("{} ({} heads x {} x {}, {:.1f} MiB packed)", t.name, t.heads, t.queries,
                                     t.keys, b64.size() / kMiB);
      left.push_back(line);
      rep.left_out.push_back(line);
      tensors[ti]["chunk"] = nullptr;
      std::string().swap(b64);
      continue;
    }
    used += b64.size();
    rep.values += t.data.size();
    tensors[ti]["chunk"] = "t" + std::to_string(ti);
    chunks.push_back({"t" + std::to_string(ti), std::move(b64)});
  }
  meta["tensors"] = tensors;
  meta["left_out"] = left;
  meta["max_mib"] = opt.max_mib;

  std::string page;
  page.reserve(used + 65536);
  page += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  // No network access of any kind: everything the page needs is inline.
  page += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
          "style-src 'unsafe-inline'; img-src data: blob:\">\n";
  page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  page += "<meta name=\"generator\" content=\"attnviz render html\">\n";
  page += "<title>" + html_escape(meta["title"].get<std::string>()) + "</title>\n<style>\n";
  page += asset(kViewCss, kViewCssSize);
  page += "</style>\n</head>\n<body>\n<div id=\"app\">Loading…</div>\n";
  page += "<script type=\"application/json\" id=\"attnviz-meta\">" + script_json(meta) + "</script>\n";
  for (const auto& c : chunks) {
    page += "<script type=\"application/octet-stream\" id=\"attnviz-chunk-" + c.id + "\">";
    page += c.b64;
    page += "</script>\n";
    rep.data_bytes += c.b64.size();
  }
  page += "<script>\n";
  page += asset(kViewJs, kViewJsSize);
  page += "</script>\n</body></html>\n";
  rep.bytes = page.size();
  if (report) *report = rep;
  return page;
}

HtmlReport render_html(const AttentionRecord& record, const HtmlOptions& opt, const std::filesystem::path& out) {
  HtmlReport rep;
  std::string page = html_page(record, opt, &rep);
  write_file_atomically(out, page);
  return rep;
}

}  // namespace attnviz::render
