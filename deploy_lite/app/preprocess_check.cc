// Host tool (no Paddle Lite): apply a bundle's preprocessing to images and write the input
// tensor as raw float32 (N x C x H x W), so it can be compared with paddleopt's Python
// preprocessing. tests/deploy_lite builds and runs it; it is also handy on a device to check
// what the app feeds the model.
//   preprocess_check BUNDLE_DIR OUT.bin IMAGE.pgm|ppm [IMAGE ...]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "preprocess.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " BUNDLE_DIR OUT.bin IMAGE.pgm|ppm [IMAGE ...]\n";
    return 2;
  }
  try {
    mini_json::Value bundle = demo::read_json(std::string(argv[1]) + "/bundle.json");
    demo::Preprocess pre = demo::preprocess_from_json(bundle["preprocess"]);
    std::vector<float> tensor;
    for (int i = 3; i < argc; ++i) demo::preprocess(demo::read_pnm(argv[i]), pre, &tensor);
    std::ofstream out(argv[2], std::ios::binary);
    out.write(reinterpret_cast<const char*>(tensor.data()),
              static_cast<std::streamsize>(tensor.size() * sizeof(float)));
    std::cout << "wrote " << argc - 3 << " x " << pre.channels << " x " << pre.height << " x "
              << pre.width << " float32 to " << argv[2] << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
