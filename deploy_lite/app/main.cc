// paddleopt_lite_demo: run a paddleopt bundle (model.nb + bundle.json) with the Paddle Lite
// C++ API on an ARM Linux board or an Android phone, and print the top-k classes per image.
//
//   paddleopt_lite_demo BUNDLE_DIR IMAGE.pgm|ppm [IMAGE ...]
//       [--threads N] [--power-mode high|low|full|no_bind|rand_high|rand_low]
//       [--top-k K] [--repeat N]
//
// Everything about the model comes from bundle.json: the input shape, the preprocessing
// (preprocess.h, the same arithmetic as paddleopt's Python side), the labels, and the .nb's
// size (checked before Lite opens it: Lite aborts the process on a truncated file).
// Build: see deploy_lite/README.md. Not built or run in paddleopt's CI (no ARM device, no
// ARM Paddle Lite library there); preprocess.h is tested on the host via preprocess_check.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "paddle_api.h"  // NOLINT  (Paddle Lite: <inference_lite_lib>/cxx/include)
#include "preprocess.h"

using paddle::lite_api::CreatePaddlePredictor;
using paddle::lite_api::MobileConfig;
using paddle::lite_api::PaddlePredictor;
using paddle::lite_api::PowerMode;
using paddle::lite_api::shape_t;
using paddle::lite_api::Tensor;

namespace {

struct Args {
  std::string bundle_dir;
  std::vector<std::string> images;
  int threads = 1;
  std::string power_mode = "high";
  int top_k = 3;
  int repeat = 1;
};

[[noreturn]] void usage(const char* prog) {
  std::cerr << "usage: " << prog << " BUNDLE_DIR IMAGE.pgm|ppm [IMAGE ...] [--threads N] "
            << "[--power-mode high|low|full|no_bind|rand_high|rand_low] [--top-k K] "
            << "[--repeat N]\n";
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0]);
      return argv[++i];
    };
    if (s == "--threads") {
      a.threads = std::stoi(next());
    } else if (s == "--power-mode") {
      a.power_mode = next();
    } else if (s == "--top-k") {
      a.top_k = std::stoi(next());
    } else if (s == "--repeat") {
      a.repeat = std::max(1, std::stoi(next()));
    } else if (a.bundle_dir.empty()) {
      a.bundle_dir = s;
    } else {
      a.images.push_back(s);
    }
  }
  if (a.bundle_dir.empty() || a.images.empty()) usage(argv[0]);
  return a;
}

PowerMode power_mode(const std::string& name) {
  if (name == "high") return PowerMode::LITE_POWER_HIGH;  // big cores
  if (name == "low") return PowerMode::LITE_POWER_LOW;    // little cores
  if (name == "full") return PowerMode::LITE_POWER_FULL;
  if (name == "no_bind") return PowerMode::LITE_POWER_NO_BIND;
  if (name == "rand_high") return PowerMode::LITE_POWER_RAND_HIGH;
  if (name == "rand_low") return PowerMode::LITE_POWER_RAND_LOW;
  throw std::runtime_error("unknown --power-mode '" + name + "'");
}

long file_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return in ? static_cast<long>(in.tellg()) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  try {
    mini_json::Value bundle = demo::read_json(args.bundle_dir + "/bundle.json");
    if (bundle["format"].str() != "paddleopt-lite-bundle") {
      throw std::runtime_error("bundle.json is not a paddleopt-lite-bundle");
    }
    const mini_json::Value& model = bundle["model"];
    std::string nb_path = args.bundle_dir + "/" + model["file"].str();
    long expected = static_cast<long>(model["size_bytes"].num());
    if (file_size(nb_path) != expected) {
      throw std::runtime_error(nb_path + " is missing or has the wrong size (expected " +
                               std::to_string(expected) + " bytes); copy the bundle again");
    }
    demo::Preprocess pre = demo::preprocess_from_json(bundle["preprocess"]);

    // 1. Config and predictor. The .nb's kernels are fixed at conversion time (to_lite
    //    target arm/opencl; fp32, fp16 or int8).
    MobileConfig config;
    config.set_model_from_file(nb_path);
    config.set_threads(args.threads);
    config.set_power_mode(power_mode(args.power_mode));
    std::shared_ptr<PaddlePredictor> predictor = CreatePaddlePredictor<MobileConfig>(config);
    std::cout << "model " << nb_path << " (" << model["target"].str() << " "
              << model["precision"].str() << ", opt " << model["opt_version"].str()
              << "), Paddle Lite runtime " << predictor->GetVersion() << ", threads "
              << args.threads << ", power mode " << args.power_mode << "\n";

    // 2. Input: every image preprocessed into one NCHW float32 batch.
    std::vector<float> batch;
    for (const std::string& path : args.images) {
      demo::preprocess(demo::read_pnm(path), pre, &batch);
    }
    const int64_t n = static_cast<int64_t>(args.images.size());
    std::unique_ptr<Tensor> input = predictor->GetInput(0);
    input->Resize(shape_t{n, pre.channels, pre.height, pre.width});
    float* input_data = input->mutable_data<float>();
    std::copy(batch.begin(), batch.end(), input_data);

    // 3. Run (the first run allocates; time the rest).
    predictor->Run();
    std::vector<double> ms;
    for (int r = 0; r < args.repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      predictor->Run();
      ms.push_back(std::chrono::duration<double, std::milli>(
          std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("latency: p50 %.3f ms over %d runs (batch %lld)\n", ms[ms.size() / 2],
                args.repeat, static_cast<long long>(n));

    // 4. Output: [n, classes] logits -> softmax -> top-k with labels.
    std::unique_ptr<const Tensor> output = predictor->GetOutput(0);
    shape_t shape = output->shape();
    const float* logits = output->data<float>();
    int64_t total = std::accumulate(shape.begin(), shape.end(), int64_t{1},
                                    std::multiplies<int64_t>());
    int64_t classes = total / n;
    const mini_json::Value& labels = bundle["labels"];
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits + i * classes;
      float top = *std::max_element(row, row + classes);
      std::vector<double> prob(classes);
      double sum = 0.0;
      for (int64_t c = 0; c < classes; ++c) sum += prob[c] = std::exp(row[c] - top);
      std::vector<int64_t> order(classes);
      std::iota(order.begin(), order.end(), 0);
      int k = static_cast<int>(std::min<int64_t>(args.top_k, classes));
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&prob](int64_t a, int64_t b) { return prob[a] > prob[b]; });
      std::cout << args.images[i] << ":";
      for (int j = 0; j < k; ++j) {
        int64_t c = order[j];
        std::string label = static_cast<size_t>(c) < labels.size()
                                ? labels[static_cast<size_t>(c)].str() : std::to_string(c);
        std::printf(" %s (%.3f)", label.c_str(), prob[c] / sum);
      }
      std::cout << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
