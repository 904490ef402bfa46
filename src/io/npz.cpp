// .npz reading: a small ZIP central-directory reader (stored + deflated via zlib, ZIP64 sizes) and
// the .npy parser for each member.
//
// Why not a ZIP library: libzip is not among the installed Debian packages, and an .npz only needs
// the central directory, the local header's name/extra lengths, and raw inflate (zlib, installed).
// Reading it by hand also lets every size be checked against the archive before allocating.
#include <attnviz/error.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/io/npz.hpp>

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <set>

namespace attnviz {

namespace {

constexpr std::uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr std::uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
// Deflate cannot expand data more than ~1032:1; a larger declared ratio is a lie (or a bomb).
constexpr std::uint64_t kMaxDeflateRatio = 1032;
constexpr std::uint64_t kHeaderProbe = 1 << 16;  // npy headers are far shorter than this

std::uint64_t le(const std::string& b, std::uint64_t off, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(b[off + i]);
  return v;
}

struct Entry {
  std::string name;
  std::uint16_t flags = 0, method = 0;
  std::uint32_t crc = 0;
  std::uint64_t comp = 0, uncomp = 0, local = 0;
};

struct ZipReader {
  const std::string& b;
  const std::string& path;

  [[noreturn]] void fail(const std::string& why) const { throw InputError(path, "zip: " + why); }
  void need(std::uint64_t off, std::uint64_t len, const std::string& what) const {
    if (off > b.size() || len > b.size() - off)
      fail(what + " at byte " + std::to_string(off) + " (" + std::to_string(len) + " bytes) runs past the end of the " +
           std::to_string(b.size()) + "-byte file (truncated?)");
  }

  std::vector<Entry> central_directory() const {
    if (b.size() < 22) fail("truncated: " + std::to_string(b.size()) + " bytes is too short for an archive");
    // The end record is the last 22 bytes plus a comment of up to 65535 bytes.
    std::uint64_t eocd = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t lowest = b.size() >= 22 + 65535 ? b.size() - 22 - 65535 : 0;
    for (std::uint64_t p = b.size() - 22 + 1; p-- > lowest;) {
      if (le(b, p, 4) == kEndSig && p + 22 + le(b, p + 20, 2) == b.size()) {
        eocd = p;
        break;
      }
    }
    if (eocd == std::numeric_limits<std::uint64_t>::max())
      fail("no end-of-central-directory record (truncated or not a zip archive)");
    std::uint64_t count = le(b, eocd + 10, 2), cd_size = le(b, eocd + 12, 4), cd_off = le(b, eocd + 16, 4);
    if (le(b, eocd + 4, 2) != 0 || le(b, eocd + 6, 2) != 0) fail("multi-disk archives are not supported");
    if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
      if (eocd < 20 || le(b, eocd - 20, 4) != kZip64LocatorSig) fail("ZIP64 sizes without a ZIP64 locator");
      const std::uint64_t z = le(b, eocd - 20 + 8, 8);
      need(z, 56, "ZIP64 end record");
      if (le(b, z, 4) != kZip64EndSig) fail(at_offset(z, "ZIP64 end record signature", "other bytes"));
      count = le(b, z + 32, 8);
      cd_size = le(b, z + 40, 8);
      cd_off = le(b, z + 48, 8);
    }
    need(cd_off, cd_size, "central directory");
    if (count > cd_size / 46) fail("central directory claims " + std::to_string(count) + " entries in " +
                                   std::to_string(cd_size) + " bytes");
    std::vector<Entry> out;
    std::set<std::string> names;
    std::uint64_t p = cd_off;
    for (std::uint64_t i = 0; i < count; ++i) {
      need(p, 46, "central directory entry");
      if (le(b, p, 4) != kCentralSig) fail(at_offset(p, "central directory signature", "other bytes"));
      Entry e;
      e.flags = static_cast<std::uint16_t>(le(b, p + 8, 2));
      e.method = static_cast<std::uint16_t>(le(b, p + 10, 2));
      e.crc = static_cast<std::uint32_t>(le(b, p + 16, 4));
      e.comp = le(b, p + 20, 4);
      e.uncomp = le(b, p + 24, 4);
      const std::uint64_t nlen = le(b, p + 28, 2), xlen = le(b, p + 30, 2), clen = le(b, p + 32, 2);
      e.local = le(b, p + 42, 4);
      need(p + 46, nlen + xlen + clen, "central directory entry name/extra");
      e.name = b.substr(p + 46, nlen);
      // ZIP64 extra field (id 1): the 64-bit values of whichever 32-bit fields are 0xFFFFFFFF, in order.
      std::uint64_t x = p + 46 + nlen;
      const std::uint64_t xend = x + xlen;
      while (x + 4 <= xend) {
        const std::uint64_t id = le(b, x, 2), sz = le(b, x + 2, 2);
        if (x + 4 + sz > xend) fail("extra field of '" + e.name + "' runs past its entry");
        if (id == 1) {
          std::uint64_t q = x + 4;
          auto take = [&](std::uint64_t& field) {
            if (field != 0xFFFFFFFF) return;
            if (q + 8 > x + 4 + sz) fail("ZIP64 extra field of '" + e.name + "' is too short");
            field = le(b, q, 8);
            q += 8;
          };
          take(e.uncomp);
          take(e.comp);
          take(e.local);
        }
        x += 4 + sz;
      }
      if (!names.insert(e.name).second) fail("member name '" + e.name + "' appears twice");
      out.push_back(std::move(e));
      p = xend + clen;
    }
    return out;
  }

  // Offset of the member's data, after its local header.
  std::uint64_t data_offset(const Entry& e) const {
    need(e.local, 30, "local header of '" + e.name + "'");
    if (le(b, e.local, 4) != kLocalSig) fail(at_offset(e.local, "local header signature of '" + e.name + "'", "other bytes"));
    const std::uint64_t start = e.local + 30 + le(b, e.local + 26, 2) + le(b, e.local + 28, 2);
    need(start, e.comp, "data of '" + e.name + "'");
    return start;
  }

  // Inflates up to `limit` bytes of a member (raw deflate). Returns what was produced; `complete`
  // says whether the stream ended.
  std::string inflate(const Entry& e, std::uint64_t start, std::uint64_t limit, bool& complete) const {
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("zlib initialisation failed");
    std::string out(limit, '\0');
    const char* in_ptr = b.data() + start;
    std::uint64_t in_left = e.comp, out_done = 0;
    int rc = Z_OK;
    complete = false;
    while (true) {
      if (zs.avail_in == 0 && in_left > 0) {  // zlib counts in 32 bits: feed at most 1 GiB at a time
        const uInt c = static_cast<uInt>(std::min<std::uint64_t>(in_left, 1u << 30));
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in_ptr));
        zs.avail_in = c;
        in_ptr += c;
        in_left -= c;
      }
      const uInt oc = static_cast<uInt>(std::min<std::uint64_t>(limit - out_done, 1u << 30));
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_done);
      zs.avail_out = oc;
      rc = ::inflate(&zs, Z_NO_FLUSH);
      out_done += oc - zs.avail_out;
      if (rc == Z_STREAM_END) {
        complete = true;
        break;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) break;  // corrupt data
      if (out_done == limit) break;                 // got what was asked for
      if (rc == Z_BUF_ERROR) break;                 // no progress possible: the input ran out
    }
    inflateEnd(&zs);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
      fail("member '" + e.name + "' is not valid deflate data (zlib error " + std::to_string(rc) + ")");
    out.resize(out_done);
    return out;
  }

  // The member's npy header, read without inflating more than kHeaderProbe bytes.
  NpyHeader header(const Entry& e, std::uint64_t start) const {
    if (e.flags & 1) fail("member '" + e.name + "' is encrypted");
    if (e.method == 0) {
      if (e.comp != e.uncomp)
        fail("stored member '" + e.name + "' has compressed size " + std::to_string(e.comp) +
             " != uncompressed size " + std::to_string(e.uncomp));
      return parse_npy_header(b.substr(start, std::min(e.comp, kHeaderProbe)), path + ":" + e.name);
    }
    if (e.method != 8)
      fail("member '" + e.name + "' uses compression method " + std::to_string(e.method) +
           " (supported: 0 stored, 8 deflated)");
    if (e.uncomp > e.comp * kMaxDeflateRatio + 1024)
      fail("member '" + e.name + "' claims " + std::to_string(e.uncomp) + " bytes from " + std::to_string(e.comp) +
           " compressed bytes (more than deflate can produce)");
    bool complete = false;
    return parse_npy_header(inflate(e, start, std::min(e.uncomp, kHeaderProbe), complete), path + ":" + e.name);
  }

  // The member's bytes, after its header `h` has been checked against the declared size and the
  // memory limit: a bomb is refused before anything near its inflated size is allocated.
  std::string member(const Entry& e, std::uint64_t start, const NpyHeader& h) const {
    if (h.header_bytes > e.uncomp || h.data_bytes != e.uncomp - h.header_bytes)
      fail("member '" + e.name + "': its npy header (" + std::to_string(h.header_bytes) + " bytes) needs " +
           std::to_string(h.data_bytes) + " data bytes, but the archive declares " + std::to_string(e.uncomp) +
           " bytes in all");
    check_array_bytes(e.uncomp, path, "member '" + e.name + "'");
    std::string out;
    if (e.method == 0) {
      out = b.substr(start, e.comp);
    } else {
      bool complete = false;
      out = inflate(e, start, e.uncomp, complete);
      if (out.size() != e.uncomp || !complete)
        fail("member '" + e.name + "' inflates to a different size than declared (" + std::to_string(e.uncomp) +
             " bytes), or is truncated");
    }
    const uLong crc = crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(out.data()), out.size());
    if (crc != e.crc) fail("member '" + e.name + "' fails its CRC-32 check (corrupt)");
    return out;
  }
};

}  // namespace

bool looks_like_zip(const std::string& head) {
  return head.size() >= 4 && (head.compare(0, 4, "PK\x03\x04") == 0 || head.compare(0, 4, "PK\x05\x06") == 0);
}

std::vector<NpzMember> parse_npz(const std::string& bytes, const std::string& path, std::vector<NpzSkipped>* skipped) {
  ZipReader z{bytes, path};
  std::vector<NpzMember> out;
  std::vector<NpzSkipped> skip;
  const std::vector<Entry> entries = z.central_directory();
  for (const Entry& e : entries) {
    if (e.name.size() < 4 || e.name.compare(e.name.size() - 4, 4, ".npy") != 0) continue;
    const std::uint64_t start = z.data_offset(e);
    const NpyHeader h = z.header(e, start);
    NpzMember m;
    m.name = e.name.substr(0, e.name.size() - 4);
    if (!h.supported_dtype) {
      skip.push_back({m.name, "dtype '" + h.descr + "': " + npy_dtype_advice(h.descr)});
      continue;
    }
    m.array = parse_npy(z.member(e, start, h), path + ":" + e.name);
    out.push_back(std::move(m));
  }
  if (out.empty() && skip.empty()) {
    // No .npy member at all: say what the archive is instead of "no attention arrays".
    for (const Entry& e : entries)
      if (e.name.size() >= 8 && e.name.compare(e.name.size() - 8, 8, "data.pkl") == 0)
        throw InputError(path, "is a PyTorch file (torch.save: a ZIP holding '" + e.name +
                                   "'), not numpy's .npz; attnviz never unpickles: save the tensors with "
                                   "numpy.savez(...) or safetensors.torch.save_file(...)");
    throw InputError(path, "is a ZIP archive with no .npy member (expected numpy's .npz)");
  }
  if (!skip.empty() && (out.empty() || !skipped)) {
    std::string why;
    for (const auto& s : skip) why += (why.empty() ? "" : "; ") + ("'" + s.name + "' has " + s.reason);
    throw InputError(path, out.empty() ? "no member can be read: " + why : why);
  }
  if (skipped) *skipped = std::move(skip);
  return out;
}

}  // namespace attnviz
