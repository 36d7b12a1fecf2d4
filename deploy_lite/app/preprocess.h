// Image preprocessing as bundle.json describes it, written to give the same tensor as
// paddleopt's Python preprocessing (Pillow + numpy) without any image library:
//   decode (binary PGM/PPM) -> gray or RGB (Pillow's integer formula) -> resize (Pillow's
//   separable filters with its 8-bit fixed-point rounding, or its affine nearest) ->
//   x / 255 (float32) -> optional 1 - x -> (x - mean) / std per channel -> CHW float32.
// tests/deploy_lite checks this file against Python (bit-exact on the test images) by
// building preprocess_check.cc on the host; it does not need Paddle Lite.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mini_json.h"

namespace demo {

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 (gray) or 3 (RGB), interleaved
  std::vector<uint8_t> pixels;
  uint8_t at(int x, int y, int c) const {
    return pixels[(static_cast<size_t>(y) * width + x) * channels + c];
  }
};

struct Preprocess {
  int channels = 1;
  int height = 0, width = 0;
  std::string resize = "bilinear";
  bool invert = false;
  std::vector<float> mean, std;
};

inline Preprocess preprocess_from_json(const mini_json::Value& pre) {
  if (!pre.has("type") || pre["type"].str() != "image") {
    throw std::runtime_error("this demo turns images into tensors; the bundle's preprocess "
                             "type is not 'image'");
  }
  Preprocess p;
  p.channels = static_cast<int>(pre["channels"].num());
  p.height = static_cast<int>(pre["size"][0].num());
  p.width = static_cast<int>(pre["size"][1].num());
  p.resize = pre["resize"].str();
  p.invert = pre["invert"].flag();
  for (size_t c = 0; c < pre["mean"].size(); ++c) {
    p.mean.push_back(static_cast<float>(pre["mean"][c].num()));
    p.std.push_back(static_cast<float>(pre["std"][c].num()));
  }
  if (p.channels != 1 && p.channels != 3) throw std::runtime_error("channels must be 1 or 3");
  if (static_cast<int>(p.mean.size()) != p.channels) {
    throw std::runtime_error("mean/std need one value per channel");
  }
  return p;
}

// -- decoding: binary PGM (P5) and PPM (P6), maxval 255 ----------------------------------
inline Image read_pnm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open image '" + path + "'");
  auto token = [&in]() {
    std::string t;
    char c;
    while (in.get(c)) {
      if (c == '#') {  // comment to end of line
        while (in.get(c) && c != '\n') {
        }
        continue;
      }
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!t.empty()) break;
        continue;
      }
      t.push_back(c);
    }
    return t;
  };
  std::string magic = token();
  if (magic != "P5" && magic != "P6") {
    throw std::runtime_error("'" + path + "' is not a binary PGM/PPM (P5/P6); convert it, "
                             "e.g. python -c \"from PIL import Image; Image.open('in.png')"
                             ".save('in.pgm')\"");
  }
  Image img;
  img.channels = magic == "P5" ? 1 : 3;
  img.width = std::stoi(token());
  img.height = std::stoi(token());
  int maxval = std::stoi(token());
  if (maxval != 255) throw std::runtime_error("'" + path + "': only 8-bit PNM is supported");
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * img.channels);
  in.read(reinterpret_cast<char*>(img.pixels.data()),
          static_cast<std::streamsize>(img.pixels.size()));
  if (in.gcount() != static_cast<std::streamsize>(img.pixels.size())) {
    throw std::runtime_error("'" + path + "' is truncated");
  }
  return img;
}

// -- colour: Pillow's convert("L") / convert("RGB") --------------------------------------
inline Image to_channels(const Image& in, int channels) {
  if (in.channels == channels) return in;
  Image out;
  out.width = in.width;
  out.height = in.height;
  out.channels = channels;
  size_t n = static_cast<size_t>(in.width) * in.height;
  out.pixels.resize(n * channels);
  for (size_t i = 0; i < n; ++i) {
    if (channels == 1) {  // ITU-R 601-2 luma in 16.16 fixed point, as Pillow's rgb2l
      const uint8_t* p = &in.pixels[i * 3];
      out.pixels[i] = static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 +
                                            0x8000) >> 16);
    } else {
      out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = in.pixels[i];
    }
  }
  return out;
}

// -- resizing: Pillow's Resample.c (bilinear, bicubic) and Geometry.c (nearest) -----------
namespace detail {

constexpr int kPrecisionBits = 32 - 8 - 2;

inline double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
inline double bicubic(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first input index, count
  std::vector<int32_t> k;   // fixed point, ksize per output pixel
};

inline Coeffs precompute(int in_size, int out_size, const std::string& filter) {
  double (*fn)(double) = filter == "bicubic" ? bicubic : bilinear;
  double filter_support = filter == "bicubic" ? 2.0 : 1.0;
  double scale = static_cast<double>(in_size) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = filter_support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(out_size * 2);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = (xx + 0.5) * scale;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(
          v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  int32_t s = v >> kPrecisionBits;  // arithmetic shift, as Pillow's lookup table index
  return static_cast<uint8_t>(s < 0 ? 0 : (s > 255 ? 255 : s));
}

inline Image resample_horizontal(const Image& in, int out_w, const std::string& filter) {
  Coeffs c = precompute(in.width, out_w, filter);
  Image out{out_w, in.height, in.channels, {}};
  out.pixels.resize(static_cast<size_t>(out_w) * in.height * in.channels);
  for (int y = 0; y < in.height; ++y) {
    for (int xx = 0; xx < out_w; ++xx) {
      int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
      const int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
      for (int ch = 0; ch < in.channels; ++ch) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) ss += in.at(x + xmin, y, ch) * k[x];
        out.pixels[(static_cast<size_t>(y) * out_w + xx) * in.channels + ch] = clip8(ss);
      }
    }
  }
  return out;
}

inline Image resample_vertical(const Image& in, int out_h, const std::string& filter) {
  Coeffs c = precompute(in.height, out_h, filter);
  Image out{in.width, out_h, in.channels, {}};
  out.pixels.resize(static_cast<size_t>(in.width) * out_h * in.channels);
  for (int yy = 0; yy < out_h; ++yy) {
    int ymin = c.bounds[yy * 2], ymax = c.bounds[yy * 2 + 1];
    const int32_t* k = &c.k[static_cast<size_t>(yy) * c.ksize];
    for (int x = 0; x < in.width; ++x) {
      for (int ch = 0; ch < in.channels; ++ch) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int y = 0; y < ymax; ++y) ss += in.at(x, y + ymin, ch) * k[y];
        out.pixels[(static_cast<size_t>(yy) * in.width + x) * in.channels + ch] = clip8(ss);
      }
    }
  }
  return out;
}

inline Image nearest(const Image& in, int out_w, int out_h) {
  // Pillow's ImagingScaleAffine: source coordinates accumulate in double, start at half a step.
  double ax = static_cast<double>(in.width) / out_w, ay = static_cast<double>(in.height) / out_h;
  std::vector<int> xs(out_w);
  double xo = ax * 0.5;
  for (int x = 0; x < out_w; ++x, xo += ax) {
    int xi = xo < 0.0 ? -1 : static_cast<int>(xo);
    xs[x] = xi < 0 ? 0 : (xi >= in.width ? in.width - 1 : xi);
  }
  Image out{out_w, out_h, in.channels, {}};
  out.pixels.resize(static_cast<size_t>(out_w) * out_h * in.channels);
  double yo = ay * 0.5;
  for (int y = 0; y < out_h; ++y, yo += ay) {
    int yi = yo < 0.0 ? -1 : static_cast<int>(yo);
    yi = yi < 0 ? 0 : (yi >= in.height ? in.height - 1 : yi);
    for (int x = 0; x < out_w; ++x) {
      for (int ch = 0; ch < in.channels; ++ch) {
        out.pixels[(static_cast<size_t>(y) * out_w + x) * in.channels + ch] = in.at(xs[x], yi, ch);
      }
    }
  }
  return out;
}

}  // namespace detail

inline Image resize(const Image& in, int out_w, int out_h, const std::string& filter) {
  if (in.width == out_w && in.height == out_h) return in;
  if (filter == "nearest") return detail::nearest(in, out_w, out_h);
  if (filter != "bilinear" && filter != "bicubic") {
    throw std::runtime_error("unknown resize filter '" + filter + "'");
  }
  Image tmp = in.width != out_w ? detail::resample_horizontal(in, out_w, filter) : in;
  return in.height != out_h ? detail::resample_vertical(tmp, out_h, filter) : tmp;
}

// -- the whole chain -> CHW float32, appended to `out` -------------------------------------
inline void preprocess(const Image& decoded, const Preprocess& p, std::vector<float>* out) {
  Image img = resize(to_channels(decoded, p.channels), p.width, p.height, p.resize);
  size_t plane = static_cast<size_t>(p.width) * p.height;
  size_t base = out->size();
  out->resize(base + plane * p.channels);
  for (int c = 0; c < p.channels; ++c) {
    for (int y = 0; y < p.height; ++y) {
      for (int x = 0; x < p.width; ++x) {
        float v = static_cast<float>(img.at(x, y, c)) / 255.0f;
        if (p.invert) v = 1.0f - v;
        (*out)[base + c * plane + static_cast<size_t>(y) * p.width + x] =
            (v - p.mean[c]) / p.std[c];
      }
    }
  }
}

inline mini_json::Value read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return mini_json::parse(text.str());
}

}  // namespace demo
