// IDX loader and writer (MNIST format): every header field checked before anything is allocated.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/data/idx.hpp>

#include <zlib.h>

#include <fstream>

namespace attnviz {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMaxGunzipped = 1ull << 31;  // 2 GiB: far above MNIST's 47 MB

// Whole file, gunzipped if it starts with the gzip magic.
std::string read_maybe_gz(const fs::path& path) {
  std::string raw = read_file(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw InputError(path.string(), "cannot start gzip decoder");
  std::string out;
  char buf[1 << 16];
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw InputError(path.string(), "corrupt gzip data (zlib error " + std::to_string(rc) + ")");
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > kMaxGunzipped) {
      inflateEnd(&zs);
      throw InputError(path.string(), "gzip data expands beyond 2 GiB");
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw InputError(path.string(), "truncated gzip data");
    }
  }
  inflateEnd(&zs);
  return out;
}

std::uint32_t be32(const std::string& b, size_t off) {
  return (std::uint32_t(static_cast<unsigned char>(b[off])) << 24) |
         (std::uint32_t(static_cast<unsigned char>(b[off + 1])) << 16) |
         (std::uint32_t(static_cast<unsigned char>(b[off + 2])) << 8) |
         std::uint32_t(static_cast<unsigned char>(b[off + 3]));
}

void put_be32(std::string& b, std::uint32_t v) {
  b += static_cast<char>(v >> 24);
  b += static_cast<char>((v >> 16) & 0xff);
  b += static_cast<char>((v >> 8) & 0xff);
  b += static_cast<char>(v & 0xff);
}

std::string hex(unsigned v) {
  static const char* d = "0123456789abcdef";
  return std::string("0x") + d[(v >> 4) & 15] + d[v & 15];
}

// Checks the header of an IDX file with `ndims` dimensions of unsigned bytes and returns the sizes.
std::vector<std::uint32_t> check_header(const std::string& b, const std::string& path, int ndims, const char* what) {
  if (b.size() < 4) throw InputError(path, "file too short for an IDX header (" + std::to_string(b.size()) + " bytes)");
  if (b[0] != 0 || b[1] != 0)
    throw InputError(path, at_offset(0, "IDX magic 00 00", hex(static_cast<unsigned char>(b[0])) + " " +
                                                               hex(static_cast<unsigned char>(b[1]))) +
                               " (not an IDX file)");
  unsigned type = static_cast<unsigned char>(b[2]);
  if (type != 0x08) throw InputError(path, at_offset(2, "data type 0x08 (unsigned byte)", hex(type)));
  int nd = static_cast<unsigned char>(b[3]);
  if (nd != ndims)
    throw InputError(path, at_offset(3, std::to_string(ndims) + " dimensions (" + what + ")", std::to_string(nd)));
  size_t header = 4 + 4 * static_cast<size_t>(nd);
  if (b.size() < header)
    throw InputError(path, "file too short for its " + std::to_string(nd) + "-dimension header (" +
                               std::to_string(b.size()) + " bytes)");
  std::vector<std::uint32_t> dims;
  std::uint64_t total = 1;
  for (int i = 0; i < nd; ++i) {
    std::uint32_t d = be32(b, 4 + 4 * i);
    if (d == 0) throw InputError(path, at_offset(4 + 4 * i, "a size > 0 for dimension " + std::to_string(i), "0"));
    if (i > 0 && d > 4096)
      throw InputError(path, at_offset(4 + 4 * i, "an image side <= 4096", std::to_string(d)));
    dims.push_back(d);
    total *= d;
  }
  std::uint64_t have = b.size() - header;
  if (have != total)
    throw InputError(path, "expected " + std::to_string(total) + " data bytes after the header, found " +
                               std::to_string(have) + (have < total ? " (truncated)" : " (trailing bytes)"));
  return dims;
}

}  // namespace

IdxImages load_idx_images(const fs::path& path) {
  std::string b = read_maybe_gz(path);
  auto dims = check_header(b, path.string(), 3, "images: count, rows, cols");
  IdxImages im;
  im.count = static_cast<int>(dims[0]);
  im.rows = static_cast<int>(dims[1]);
  im.cols = static_cast<int>(dims[2]);
  if (dims[0] > 100'000'000u) throw InputError(path.string(), "image count " + std::to_string(dims[0]) + " is implausible");
  im.pixels.assign(reinterpret_cast<const std::uint8_t*>(b.data()) + 16,
                   reinterpret_cast<const std::uint8_t*>(b.data()) + b.size());
  return im;
}

std::vector<std::uint8_t> load_idx_labels(const fs::path& path, int num_classes) {
  std::string b = read_maybe_gz(path);
  check_header(b, path.string(), 1, "labels: count");
  std::vector<std::uint8_t> labels(reinterpret_cast<const std::uint8_t*>(b.data()) + 8,
                                   reinterpret_cast<const std::uint8_t*>(b.data()) + b.size());
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= num_classes)
      throw InputError(path.string(), at_offset(8 + i, "a label < " + std::to_string(num_classes),
                                                std::to_string(labels[i])) + " (label #" + std::to_string(i) + ")");
  return labels;
}

void save_idx_images(const fs::path& path, const IdxImages& im) {
  if (im.count <= 0 || im.rows <= 0 || im.cols <= 0 ||
      im.pixels.size() != static_cast<size_t>(im.count) * im.rows * im.cols)
    throw InputError(path.string(), "image data does not match its shape");
  std::string b("\0\0\x08\x03", 4);
  put_be32(b, im.count);
  put_be32(b, im.rows);
  put_be32(b, im.cols);
  b.append(reinterpret_cast<const char*>(im.pixels.data()), im.pixels.size());
  write_file_atomically(path, b);
}

void save_idx_labels(const fs::path& path, const std::vector<std::uint8_t>& labels) {
  if (labels.empty()) throw InputError(path.string(), "no labels to write");
  std::string b("\0\0\x08\x01", 4);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.append(reinterpret_cast<const char*>(labels.data()), labels.size());
  write_file_atomically(path, b);
}

ImageSet load_image_set(const fs::path& images, const fs::path& labels, int num_classes) {
  IdxImages im = load_idx_images(images);
  auto lb = load_idx_labels(labels, num_classes);
  if (static_cast<size_t>(im.count) != lb.size())
    throw InputError(labels.string(), "holds " + std::to_string(lb.size()) + " labels but " + images.string() +
                                          " holds " + std::to_string(im.count) + " images");
  ImageSet s;
  s.count = im.count;
  s.rows = im.rows;
  s.cols = im.cols;
  s.pixels.resize(im.pixels.size());
  for (size_t i = 0; i < im.pixels.size(); ++i) s.pixels[i] = im.pixels[i] / 255.0f;
  s.labels.assign(lb.begin(), lb.end());
  return s;
}

ImageSet load_mnist(const fs::path& dir, const std::string& split) {
  std::string stem;
  if (split == "train") stem = "train";
  else if (split == "test") stem = "t10k";
  else throw UsageError("unknown MNIST split '" + split + "' (train or test)");
  auto find = [&](const std::string& name) {
    fs::path p = dir / name;
    if (fs::exists(p)) return p;
    fs::path gz = dir / (name + ".gz");
    if (fs::exists(gz)) return gz;
    throw InputError(p.string(), "MNIST file not found (also looked for " + gz.filename().string() +
                                     "; set --data or $ATTNVIZ_DATA to the folder holding the IDX files)");
  };
  fs::path ip = find(stem + "-images-idx3-ubyte");
  fs::path lp = find(stem + "-labels-idx1-ubyte");
  return load_image_set(ip, lp, 10);
}

}  // namespace attnviz
