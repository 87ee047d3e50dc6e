#include "tools/inspect/png.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#ifdef NE_HAVE_ZLIB
#include <zlib.h>
#endif

namespace ne::inspect {

Image::Image(int w, int h, uint8_t r, uint8_t g, uint8_t b) : width(w), height(h) {
  rgb.resize(size_t(w) * size_t(h) * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) rgb[i] = r, rgb[i + 1] = g, rgb[i + 2] = b;
}

void Image::set(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  uint8_t* p = px(x, y);
  p[0] = r, p[1] = g, p[2] = b;
}

void Image::fill_rect(int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b) {
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) set(x, y, r, g, b);
}

namespace {
// 3x5 glyphs, one row per 3 bits (MSB = left), 5 rows.
const uint8_t* glyph(char c) {
  static const uint8_t digits[10][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7},
                                        {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1},
                                        {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};
  static const uint8_t pct[5] = {5, 1, 2, 4, 5}, dot[5] = {0, 0, 0, 0, 2}, minus[5] = {0, 0, 7, 0, 0},
                       x[5] = {0, 5, 2, 5, 0}, blank[5] = {0, 0, 0, 0, 0};
  if (c >= '0' && c <= '9') return digits[c - '0'];
  switch (c) {
    case '%': return pct;
    case '.': return dot;
    case '-': return minus;
    case 'x': return x;
    default: return blank;
  }
}
}  // namespace

void Image::text(int x, int y, const std::string& s, int scale, uint8_t r, uint8_t g, uint8_t b) {
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t* gl = glyph(s[i]);
    int ox = x + int(i) * 4 * scale;
    for (int row = 0; row < 5; ++row)
      for (int col = 0; col < 3; ++col)
        if (gl[row] & (4 >> col)) fill_rect(ox + col * scale, y + row * scale, ox + (col + 1) * scale, y + (row + 1) * scale, r, g, b);
  }
}

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc) {
  static uint32_t table[256];
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const uint8_t* p, size_t n, uint32_t a) {
  uint32_t s1 = a & 0xFFFF, s2 = a >> 16;
  for (size_t i = 0; i < n; ++i) {
    s1 = (s1 + p[i]) % 65521;
    s2 = (s2 + s1) % 65521;
  }
  return (s2 << 16) | s1;
}

bool png_compression_available() {
#ifdef NE_HAVE_ZLIB
  return true;
#else
  return false;
#endif
}

namespace {
void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}
uint32_t get32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put32(out, uint32_t(data.size()));
  size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put32(out, crc32(&out[start], out.size() - start));
}

std::vector<uint8_t> zlib_stored(const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> z = {0x78, 0x01};
  size_t pos = 0;
  do {
    size_t n = std::min<size_t>(65535, raw.size() - pos);
    bool last = pos + n == raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(uint8_t(n)), z.push_back(uint8_t(n >> 8));
    z.push_back(uint8_t(~n)), z.push_back(uint8_t(~n >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + n);
    pos += n;
  } while (pos < raw.size());
  put32(z, adler32(raw.data(), raw.size()));
  return z;
}

// Inflates a zlib stream made only of stored blocks. Returns false on anything else.
bool inflate_stored(const std::vector<uint8_t>& z, std::vector<uint8_t>* raw, std::string* err) {
  if (z.size() < 6 || (z[0] & 0x0F) != 8 || ((z[0] << 8) | z[1]) % 31 != 0) return *err = "bad zlib header", false;
  size_t p = 2;
  for (;;) {
    if (p + 5 > z.size()) return *err = "truncated deflate stream", false;
    uint8_t hdr = z[p];
    if ((hdr >> 1) != 0) return *err = "compressed deflate block (built without zlib: only stored blocks decode)", false;
    uint16_t len = uint16_t(z[p + 1] | z[p + 2] << 8), nlen = uint16_t(z[p + 3] | z[p + 4] << 8);
    if (uint16_t(~nlen) != len) return *err = "stored block LEN/NLEN mismatch", false;
    p += 5;
    if (p + len > z.size()) return *err = "truncated stored block", false;
    raw->insert(raw->end(), z.begin() + p, z.begin() + p + len);
    p += len;
    if (hdr & 1) break;
  }
  if (p + 4 > z.size()) return *err = "missing Adler-32", false;
  if (get32(&z[p]) != adler32(raw->data(), raw->size())) return *err = "Adler-32 mismatch", false;
  return true;
}
}  // namespace

std::vector<uint8_t> encode_png(const Image& img) {
  std::vector<uint8_t> raw;
  raw.reserve(size_t(img.height) * (size_t(img.width) * 3 + 1));
  for (int y = 0; y < img.height; ++y) {
    raw.push_back(0);  // filter: none
    const uint8_t* row = img.px(0, y);
    raw.insert(raw.end(), row, row + size_t(img.width) * 3);
  }
  std::vector<uint8_t> z;
#ifdef NE_HAVE_ZLIB
  uLongf zn = compressBound(uLong(raw.size()));
  z.resize(zn);
  if (compress2(z.data(), &zn, raw.data(), uLong(raw.size()), 6) == Z_OK)
    z.resize(zn);
  else
    z = zlib_stored(raw);
#else
  z = zlib_stored(raw);
#endif
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, uint32_t(img.width));
  put32(ihdr, uint32_t(img.height));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit, RGB, deflate, adaptive filter, no interlace
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", {});
  return out;
}

bool decode_png(const std::vector<uint8_t>& b, Image* out, std::string* err) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), sig, 8) != 0) return *err = "not a PNG (signature)", false;
  size_t p = 8;
  uint32_t w = 0, h = 0;
  int ctype = -1;
  std::vector<uint8_t> z;
  bool end = false;
  while (!end) {
    if (p + 12 > b.size()) return *err = "truncated chunk", false;
    uint32_t len = get32(&b[p]);
    if (p + 12 + size_t(len) > b.size()) return *err = "chunk past the end of the file", false;
    const uint8_t* type = &b[p + 4];
    const uint8_t* data = &b[p + 8];
    if (crc32(type, size_t(len) + 4) != get32(data + len))
      return *err = "CRC mismatch in chunk " + std::string(reinterpret_cast<const char*>(type), 4), false;
    if (!std::memcmp(type, "IHDR", 4)) {
      if (len != 13) return *err = "bad IHDR", false;
      w = get32(data), h = get32(data + 4);
      if (data[8] != 8) return *err = "only 8-bit PNGs are supported", false;
      ctype = data[9];
      if (ctype != 0 && ctype != 2 && ctype != 6) return *err = "unsupported colour type", false;
      if (data[12] != 0) return *err = "interlaced PNGs are not supported", false;
      if (w == 0 || h == 0 || uint64_t(w) * h > (uint64_t(1) << 28)) return *err = "bad image size", false;
    } else if (!std::memcmp(type, "IDAT", 4)) {
      z.insert(z.end(), data, data + len);
    } else if (!std::memcmp(type, "IEND", 4)) {
      end = true;
    }
    p += 12 + size_t(len);
  }
  if (ctype < 0) return *err = "no IHDR", false;
  const int ch = ctype == 0 ? 1 : ctype == 2 ? 3 : 4;
  const size_t stride = size_t(w) * ch;
  std::vector<uint8_t> raw;
#ifdef NE_HAVE_ZLIB
  raw.resize((stride + 1) * h);
  uLongf rn = uLongf(raw.size());
  if (uncompress(raw.data(), &rn, z.data(), uLong(z.size())) != Z_OK || rn != raw.size())
    return *err = "zlib stream does not inflate to the image size", false;
#else
  if (!inflate_stored(z, &raw, err)) return false;
#endif
  if (raw.size() != (stride + 1) * h) return *err = "image data has the wrong size", false;
  std::vector<uint8_t> cur(stride), prev(stride, 0);
  *out = Image(int(w), int(h));
  for (uint32_t y = 0; y < h; ++y) {
    const uint8_t f = raw[y * (stride + 1)];
    const uint8_t* s = &raw[y * (stride + 1) + 1];
    for (size_t i = 0; i < stride; ++i) {
      int a = i >= size_t(ch) ? cur[i - ch] : 0, up = prev[i], c = i >= size_t(ch) ? prev[i - ch] : 0;
      int v;
      switch (f) {
        case 0: v = 0; break;
        case 1: v = a; break;
        case 2: v = up; break;
        case 3: v = (a + up) / 2; break;
        case 4: {
          int pp = a + up - c, pa = std::abs(pp - a), pb = std::abs(pp - up), pc = std::abs(pp - c);
          v = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
          break;
        }
        default: return *err = "bad filter type", false;
      }
      cur[i] = uint8_t(s[i] + v);
    }
    for (uint32_t x = 0; x < w; ++x) {
      uint8_t* d = out->px(int(x), int(y));
      if (ch == 1) d[0] = d[1] = d[2] = cur[x];
      else for (int k = 0; k < 3; ++k) d[k] = cur[size_t(x) * ch + k];
    }
    std::swap(cur, prev);
  }
  (void)inflate_stored;
  return true;
}

std::string base64(const std::vector<uint8_t>& b) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string r;
  r.reserve((b.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < b.size(); i += 3) {
    uint32_t v = uint32_t(b[i]) << 16 | uint32_t(b[i + 1]) << 8 | b[i + 2];
    r += t[v >> 18], r += t[(v >> 12) & 63], r += t[(v >> 6) & 63], r += t[v & 63];
  }
  if (i + 1 == b.size()) {
    uint32_t v = uint32_t(b[i]) << 16;
    r += t[v >> 18], r += t[(v >> 12) & 63], r += "==";
  } else if (i + 2 == b.size()) {
    uint32_t v = uint32_t(b[i]) << 16 | uint32_t(b[i + 1]) << 8;
    r += t[v >> 18], r += t[(v >> 12) & 63], r += t[(v >> 6) & 63], r += '=';
  }
  return r;
}

}  // namespace ne::inspect
