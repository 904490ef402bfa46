// Crafted inputs for the safety tests: npy headers, ZIP archives (stored, deflated, ZIP64 sizes),
// a deflate "bomb" built without inflating it, safetensors with any header.
#pragma once
#include "test_util.hpp"

#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnviz::test {

// An .npy 1.0 image: header dict padded to 64 bytes, then `data`.
inline std::string npy_bytes(const std::string& descr, const std::string& shape, const std::string& data,
                             bool fortran = false) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                     ", 'shape': " + shape + ", }";
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  return std::string("\x93NUMPY\x01\x00", 8) + u16(static_cast<unsigned>(dict.size())) + dict + data;
}

inline std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

struct ZipItem {
  std::string name;
  std::string data;            // bytes as stored (compressed when method 8)
  std::uint16_t method = 0;    // 0 stored, 8 deflated
  std::uint32_t crc = 0;       // of the uncompressed bytes
  std::uint64_t uncomp = 0;    // uncompressed size (may exceed 4 GiB: ZIP64 extra field)
};

inline ZipItem stored(const std::string& name, const std::string& bytes) {
  ZipItem z;
  z.name = name;
  z.data = bytes;
  z.uncomp = bytes.size();
  z.crc = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
  return z;
}

inline std::string zip_bytes(const std::vector<ZipItem>& items) {
  std::string out, cd;
  for (const auto& it : items) {
    const bool big = it.uncomp >= 0xFFFFFFFFull;
    const std::uint32_t u32size = big ? 0xFFFFFFFFu : static_cast<std::uint32_t>(it.uncomp);
    const std::uint64_t local = out.size();
    out += u32(0x04034b50) + u16(45) + u16(0) + u16(it.method) + u16(0) + u16(0) + u32(it.crc) +
           u32(static_cast<std::uint32_t>(it.data.size())) + u32(u32size) + u16(static_cast<unsigned>(it.name.size())) +
           u16(0) + it.name + it.data;
    const std::string extra = big ? u16(1) + u16(8) + u64(it.uncomp) : std::string();
    cd += u32(0x02014b50) + u16(45) + u16(45) + u16(0) + u16(it.method) + u16(0) + u16(0) + u32(it.crc) +
          u32(static_cast<std::uint32_t>(it.data.size())) + u32(u32size) + u16(static_cast<unsigned>(it.name.size())) +
          u16(static_cast<unsigned>(extra.size())) + u16(0) + u16(0) + u16(0) + u32(0) +
          u32(static_cast<std::uint32_t>(local)) + it.name + extra;
  }
  const std::uint64_t cd_off = out.size();
  out += cd;
  out += u32(0x06054b50) + u16(0) + u16(0) + u16(static_cast<unsigned>(items.size())) +
         u16(static_cast<unsigned>(items.size())) + u32(static_cast<std::uint32_t>(cd.size())) +
         u32(static_cast<std::uint32_t>(cd_off)) + u16(0);
  return out;
}

// A deflated member holding `head` followed by `zeros` zero bytes, at deflate's usual ~1000:1 for
// zeros, built in milliseconds: after a full flush the compressor's state is reset, so every
// further 1 MiB block of zeros compresses to the same bytes, which are repeated.
inline ZipItem deflate_bomb(const std::string& name, const std::string& head, std::uint64_t zeros) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
  auto run = [&](const std::string& in, int flush) {
    std::string out(in.size() + 4096, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    std::string got;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(out.data());
      zs.avail_out = static_cast<uInt>(out.size());
      deflate(&zs, flush);
      got.append(out.data(), out.size() - zs.avail_out);
    } while (zs.avail_out == 0);
    return got;
  };
  const std::uint64_t chunk = 1 << 20;
  const std::string zchunk(chunk, '\0');
  ZipItem z;
  z.name = name;
  z.method = 8;
  z.data = run(head, Z_FULL_FLUSH);
  const std::string first = run(zchunk, Z_FULL_FLUSH), block = run(zchunk, Z_FULL_FLUSH);
  z.data += first + block;
  std::uint64_t done = 2 * chunk;
  for (; done + chunk <= zeros; done += chunk) z.data += block;
  z.data += run(std::string(zeros - done, '\0'), Z_FINISH);
  deflateEnd(&zs);
  z.uncomp = head.size() + zeros;
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(head.data()), static_cast<uInt>(head.size()));
  const uLong zcrc = crc32(0, reinterpret_cast<const Bytef*>(zchunk.data()), static_cast<uInt>(chunk));
  for (std::uint64_t i = 0; i + chunk <= zeros; i += chunk) crc = crc32_combine(crc, zcrc, static_cast<z_off_t>(chunk));
  const std::string rest(zeros % chunk, '\0');
  crc = crc32_combine(crc, crc32(0, reinterpret_cast<const Bytef*>(rest.data()), static_cast<uInt>(rest.size())),
                      static_cast<z_off_t>(rest.size()));
  z.crc = static_cast<std::uint32_t>(crc);
  return z;
}

// A safetensors image: 8-byte header length, the header text as given, then `data`.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return u64(header.size()) + header + data;
}

}  // namespace attnviz::test
