// Minimal PNG (8-bit RGB, no interlace) encoder and decoder for the inspection report.
// With zlib (NE_HAVE_ZLIB) the image data is deflate-compressed and any PNG of that format
// decodes; without it the encoder writes stored (uncompressed) deflate blocks and the decoder
// reads only those. CRC-32 and Adler-32 are computed here either way.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ne::inspect {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
  Image() = default;
  Image(int w, int h, uint8_t r = 255, uint8_t g = 255, uint8_t b = 255);
  uint8_t* px(int x, int y) { return &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3]; }
  const uint8_t* px(int x, int y) const { return &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3]; }
  void set(int x, int y, uint8_t r, uint8_t g, uint8_t b);  // ignores out-of-range
  void fill_rect(int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b);  // [x0,x1)x[y0,y1)
  // Tiny built-in 3x5 font: digits, '%', '.', '-', 'x', ' ' (others drawn blank); `scale` px/dot.
  void text(int x, int y, const std::string& s, int scale, uint8_t r, uint8_t g, uint8_t b);
};

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0);
uint32_t adler32(const uint8_t* p, size_t n, uint32_t a = 1);

std::vector<uint8_t> encode_png(const Image& img);
// Decodes 8-bit RGB / RGBA / grey (colour types 0, 2, 6), non-interlaced, all filters; checks
// every chunk CRC and the Adler-32. RGBA is returned as RGB (alpha dropped). Returns false with
// *err set when the file is not such a PNG.
bool decode_png(const std::vector<uint8_t>& bytes, Image* out, std::string* err);
bool png_compression_available();  // true when built with zlib (any deflate decodes)

std::string base64(const std::vector<uint8_t>& b);

}  // namespace ne::inspect
