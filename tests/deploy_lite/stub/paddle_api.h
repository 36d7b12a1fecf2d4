// A stand-in for Paddle Lite's paddle_api.h with only the declarations the demo app uses,
// spelled as in Paddle Lite 2.13 (lite/api/paddle_api.h, lite/api/paddle_place.h). It lets
// `g++ -fsyntax-only` check deploy_lite/app/main.cc on a machine without the ARM library.
// It declares, it does not implement: nothing built against it can link or run.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace paddle {
namespace lite_api {

using shape_t = std::vector<int64_t>;
enum class TargetType : int { kUnk = 0, kHost = 1 };
enum PowerMode {
  LITE_POWER_HIGH = 0,
  LITE_POWER_LOW = 1,
  LITE_POWER_FULL = 2,
  LITE_POWER_NO_BIND = 3,
  LITE_POWER_RAND_HIGH = 4,
  LITE_POWER_RAND_LOW = 5
};

struct Tensor {
  void Resize(const shape_t& shape);
  template <typename T>
  const T* data() const;
  template <typename T>
  T* mutable_data(TargetType type = TargetType::kHost) const;
  shape_t shape() const;
};

class PaddlePredictor {
 public:
  virtual std::unique_ptr<Tensor> GetInput(int i) = 0;
  virtual std::unique_ptr<const Tensor> GetOutput(int i) const = 0;
  virtual void Run() = 0;
  virtual std::string GetVersion() const = 0;
  virtual ~PaddlePredictor() = default;
};

class ConfigBase {
 public:
  void set_threads(int threads);
  void set_power_mode(PowerMode mode);
};

class MobileConfig : public ConfigBase {
 public:
  void set_model_from_file(const std::string& x);
};

template <typename ConfigT>
std::shared_ptr<PaddlePredictor> CreatePaddlePredictor(const ConfigT&);

}  // namespace lite_api
}  // namespace paddle
