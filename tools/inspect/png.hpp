// PNG (8-bit RGB) encoding and decoding for the inspection report, through libpng; CRC-32 and
// Adler-32 are zlib's (libpng's own dependency).
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
// Decodes any PNG libpng reads (grey, RGB, RGBA, palette; 1-16 bits; interlaced), checking every
// chunk's CRC (ancillary ones too) and the Adler-32; returned as 8-bit RGB (alpha dropped). Returns false with *err set
// when the file is not a PNG or does not decode. Images above 2^28 pixels are refused.
bool decode_png(const std::vector<uint8_t>& bytes, Image* out, std::string* err);
bool png_compression_available();  // always true with libpng (kept for the callers)

std::string base64(const std::vector<uint8_t>& b);

}  // namespace ne::inspect
