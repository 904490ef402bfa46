// IDX files (the MNIST format): loading and checking images and labels, and writing them (tests,
// synthetic sets).
//
// Layout (big-endian): u8 0, u8 0, u8 type (0x08 = unsigned byte), u8 ndims, then ndims u32
// sizes, then the data. Images are 3-D [count, rows, cols], labels 1-D [count].
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace attnviz {

struct IdxImages {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // [count * rows * cols], row-major, 0..255
};

// Loads a ubyte IDX image file (plain, or gzip-compressed: detected by content). Checks magic,
// type, dimension count, sizes (> 0, at most 4096 x 4096 per image) and that the file holds
// exactly count * rows * cols bytes of data; throws InputError(path, ...) otherwise.
IdxImages load_idx_images(const std::filesystem::path& path);
// Loads a ubyte IDX label file; every label must be < num_classes.
std::vector<std::uint8_t> load_idx_labels(const std::filesystem::path& path, int num_classes = 10);

// Writes IDX files (atomically). images: [count * rows * cols].
void save_idx_images(const std::filesystem::path& path, const IdxImages& images);
void save_idx_labels(const std::filesystem::path& path, const std::vector<std::uint8_t>& labels);

// A labelled image set ready for training: pixels scaled to [0, 1].
struct ImageSet {
  int count = 0, rows = 0, cols = 0;
  std::vector<float> pixels;   // [count * rows * cols]
  std::vector<int> labels;     // [count]
  const float* image(int i) const { return pixels.data() + static_cast<size_t>(i) * rows * cols; }
};

// Loads an image file and a label file and checks that their counts agree.
ImageSet load_image_set(const std::filesystem::path& images, const std::filesystem::path& labels,
                        int num_classes = 10);

// MNIST in `dir`: split "train" (train-images-idx3-ubyte, train-labels-idx1-ubyte) or "test"
// (t10k-*); each file may also be present with a .gz suffix. A missing file is an InputError
// that says where the files were looked for.
ImageSet load_mnist(const std::filesystem::path& dir, const std::string& split);

}  // namespace attnviz
