#include "tools/inspect/png.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <png.h>
#include <zlib.h>

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
  // zlib's (libpng's own dependency); zlib takes lengths as uInt.
  for (size_t done = 0; done < n;) {
    uInt k = uInt(std::min<size_t>(n - done, 1u << 30));
    crc = uint32_t(::crc32(uLong(crc), p + done, k));
    done += k;
  }
  return crc;
}

uint32_t adler32(const uint8_t* p, size_t n, uint32_t a) {
  for (size_t done = 0; done < n;) {
    uInt k = uInt(std::min<size_t>(n - done, 1u << 30));
    a = uint32_t(::adler32(uLong(a), p + done, k));
    done += k;
  }
  return a;
}

bool png_compression_available() { return true; }  // libpng always deflates and inflates

namespace {
// libpng reports errors by calling these; error_fn must not return (longjmp to the setjmp below).
// Between setjmp and a longjmp no object with a destructor is created: all are declared before.
void error_fn(png_structp png, png_const_charp msg) {
  *static_cast<std::string*>(png_get_error_ptr(png)) = msg;
  png_longjmp(png, 1);
}
void warning_fn(png_structp, png_const_charp) {}

void write_fn(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void flush_fn(png_structp) {}

struct Reader {
  const uint8_t* data;
  size_t size, pos;
};
void read_fn(png_structp png, png_bytep dst, png_size_t n) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (r->size - r->pos < n) png_error(png, "truncated PNG");
  std::memcpy(dst, r->data + r->pos, n);
  r->pos += n;
}
}  // namespace

// IHDR, IDAT, IEND only (as before libpng: no sRGB/gAMA chunks), 8-bit RGB, zlib level 6.
std::vector<uint8_t> encode_png(const Image& img) {
  std::vector<uint8_t> out;
  std::vector<png_bytep> rows(size_t(std::max(img.height, 0)));
  std::string err;
  if (img.width <= 0 || img.height <= 0) return out;
  for (int y = 0; y < img.height; ++y) rows[size_t(y)] = const_cast<png_bytep>(img.px(0, y));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, error_fn, warning_fn);
  if (!png) return out;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    out.clear();
    return out;
  }
  png_set_write_fn(png, &out, write_fn, flush_fn);
  png_set_IHDR(png, info, png_uint_32(img.width), png_uint_32(img.height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 6);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

bool decode_png(const std::vector<uint8_t>& b, Image* out, std::string* err) {
  if (b.size() < 8 || png_sig_cmp(b.data(), 0, 8) != 0) return *err = "not a PNG (signature)", false;
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  std::string msg;
  Reader reader{b.data(), b.size(), 0};
  png_uint_32 w = 0, h = 0;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &msg, error_fn, warning_fn);
  if (!png) return *err = "libpng: out of memory", false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    *err = msg.empty() ? "PNG does not decode" : msg;
    return false;
  }
  // A bad CRC in any chunk, ancillary ones included, is an error (libpng's default only warns
  // about ancillary chunks and drops them).
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_set_read_fn(png, &reader, read_fn);
  png_read_info(png, info);
  w = png_get_image_width(png, info);
  h = png_get_image_height(png, info);
  if (w == 0 || h == 0 || uint64_t(w) * h > (uint64_t(1) << 28)) png_error(png, "bad image size");
  // To 8-bit RGB whatever was stored: palette and low-bit grey expanded, 16 bits stripped,
  // alpha dropped (not composited), grey replicated, interlacing undone.
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t(w) * 3) png_error(png, "unexpected row size after conversion to RGB");
  pixels.resize(size_t(w) * h * 3);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = pixels.data() + size_t(y) * w * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);  // reads (and CRC-checks) the chunks after the image data
  png_destroy_read_struct(&png, &info, nullptr);
  out->width = int(w);
  out->height = int(h);
  out->rgb = std::move(pixels);
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
