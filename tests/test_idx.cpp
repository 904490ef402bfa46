// Tests of the IDX loader: round trips, gzip, and one clear error for every malformed header.
#include <attnviz/error.hpp>
#include <attnviz/data/idx.hpp>

#include <doctest/doctest.h>
#include <functional>
#include <zlib.h>

#include "test_util.hpp"

using namespace attnviz;
using attnviz::test::spit;
using attnviz::test::temp_dir;

namespace {

std::string be(std::uint32_t v) {
  std::string s;
  s += char(v >> 24), s += char((v >> 16) & 255), s += char((v >> 8) & 255), s += char(v & 255);
  return s;
}

// A 3-image 2x3 file: pixel values 0, 1, 2, ...
std::string images_bytes() {
  std::string b("\0\0\x08\x03", 4);
  b += be(3) + be(2) + be(3);
  for (int i = 0; i < 18; ++i) b += char(i * 10);
  return b;
}

std::string labels_bytes(int n = 3) {
  std::string b("\0\0\x08\x01", 4);
  b += be(n);
  for (int i = 0; i < n; ++i) b += char(i % 10);
  return b;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("images and labels load with their shapes and values") {
  auto dir = temp_dir("idx_ok");
  spit(dir / "img", images_bytes());
  spit(dir / "lab", labels_bytes());
  IdxImages im = load_idx_images(dir / "img");
  CHECK(im.count == 3);
  CHECK(im.rows == 2);
  CHECK(im.cols == 3);
  REQUIRE(im.pixels.size() == 18);
  CHECK(im.pixels[17] == 170);
  auto lb = load_idx_labels(dir / "lab");
  CHECK(lb == std::vector<std::uint8_t>{0, 1, 2});
  ImageSet s = load_image_set(dir / "img", dir / "lab");
  CHECK(s.count == 3);
  CHECK(s.pixels[17] == doctest::Approx(170 / 255.0));
  CHECK(s.image(2)[5] == doctest::Approx(170 / 255.0));
  CHECK(s.labels == std::vector<int>{0, 1, 2});
}

TEST_CASE("save then load is the identity, also through gzip") {
  auto dir = temp_dir("idx_roundtrip");
  IdxImages im;
  im.count = 2, im.rows = 4, im.cols = 5;
  for (int i = 0; i < 40; ++i) im.pixels.push_back(static_cast<std::uint8_t>(i * 6));
  save_idx_images(dir / "train-images-idx3-ubyte", im);
  save_idx_labels(dir / "train-labels-idx1-ubyte", {7, 3});
  IdxImages back = load_idx_images(dir / "train-images-idx3-ubyte");
  CHECK(back.pixels == im.pixels);
  CHECK(back.rows == 4);
  // gzip-compressed copy under the .gz name is found by load_mnist and decoded by content
  std::string raw = test::slurp(dir / "train-images-idx3-ubyte");
  auto gz_dir = temp_dir("idx_gz");
  gzFile g = gzopen((gz_dir / "train-images-idx3-ubyte.gz").c_str(), "wb");
  REQUIRE(g);
  gzwrite(g, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(g);
  std::filesystem::copy_file(dir / "train-labels-idx1-ubyte", gz_dir / "train-labels-idx1-ubyte");
  ImageSet s = load_mnist(gz_dir, "train");
  CHECK(s.count == 2);
  CHECK(s.labels == std::vector<int>{7, 3});
  CHECK(s.pixels[39] == doctest::Approx(234 / 255.0));
}

TEST_CASE("malformed files give one error naming the file and the problem") {
  auto dir = temp_dir("idx_bad");
  auto img_err = [&](const std::string& bytes) {
    spit(dir / "x", bytes);
    return error_of([&] { load_idx_images(dir / "x"); });
  };
  std::string good = images_bytes();
  CHECK(img_err("") .find("too short") != std::string::npos);
  CHECK(img_err(std::string("\x1f\x00\x08\x03", 4) + good.substr(4)).find("not an IDX file") != std::string::npos);
  std::string wrong_type = good;
  wrong_type[2] = 0x0D;
  CHECK(img_err(wrong_type).find("unsigned byte") != std::string::npos);
  std::string wrong_dims = good;
  wrong_dims[3] = 1;
  CHECK(img_err(wrong_dims).find("3 dimensions") != std::string::npos);
  CHECK(img_err(good.substr(0, 10)).find("header") != std::string::npos);
  CHECK(img_err(good.substr(0, good.size() - 1)).find("truncated") != std::string::npos);
  CHECK(img_err(good + "x").find("trailing") != std::string::npos);
  std::string zero = std::string("\0\0\x08\x03", 4) + be(0) + be(2) + be(3);
  CHECK(img_err(zero).find("size > 0") != std::string::npos);
  std::string huge = std::string("\0\0\x08\x03", 4) + be(1) + be(100000) + be(100000);
  CHECK(img_err(huge).find("<= 4096") != std::string::npos);
  CHECK(img_err(good + "x").find((dir / "x").string()) == 0);
  // a corrupt gzip stream
  CHECK(img_err(std::string("\x1f\x8b\x08\x00garbage", 11)).find("gzip") != std::string::npos);

  // labels: out of range, and counts that disagree with the images
  std::string lab = labels_bytes(3);
  lab[9] = 12;
  spit(dir / "lab", lab);
  CHECK(error_of([&] { load_idx_labels(dir / "lab"); }).find("label < 10") != std::string::npos);
  spit(dir / "img", images_bytes());
  spit(dir / "lab", labels_bytes(4));
  CHECK(error_of([&] { load_image_set(dir / "img", dir / "lab"); }).find("4 labels but") != std::string::npos);
  // missing files
  CHECK(error_of([&] { load_mnist(dir / "nowhere", "test"); }).find("not found") != std::string::npos);
  CHECK_THROWS_AS(load_mnist(dir, "valid"), UsageError);
}
