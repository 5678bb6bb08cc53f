// Typed errors at the engine's boundary: the coordinator links no libtorch,
// so c10's exception types are translated here, where they are visible.
#include "cli/engine_evaluator.h"

#include <c10/util/Exception.h>

#include <memory>

#include "coordinator/evaluators.h"
#include "io/env_switches.h"
#include "io/failure.h"
#include "worker/evaluator.h"

namespace diffsearch::cli {
namespace {

class TypedErrorsEvaluator : public worker::Evaluator {
 public:
  explicit TypedErrorsEvaluator(std::unique_ptr<worker::Evaluator> inner) : inner_(std::move(inner)) {}
  worker::EvaluationRecord evaluate(const worker::MeasurementUnit& unit) override {
    try {
      return inner_->evaluate(unit);
    } catch (const c10::OutOfMemoryError& e) {
      // A memory cap set in the environment may be the cause: the row says so.
      throw OutOfMemoryError(e.what() + io::env_switch_note("DIFFSEARCH_CUDA_MEMORY_FRACTION"));
    }
  }
  std::string gpu_name(const std::string& device) override { return inner_->gpu_name(device); }
  std::string timing(const std::string& device) override { return inner_->timing(device); }
  std::optional<double> estimate_seconds(const worker::MeasurementUnit& unit) override {
    return inner_->estimate_seconds(unit);
  }

 private:
  std::unique_ptr<worker::Evaluator> inner_;
};

}  // namespace

void register_engine_evaluator() {
  coordinator::register_engine_evaluator(
      [] { return std::make_unique<TypedErrorsEvaluator>(worker::make_engine_evaluator()); });
}

}  // namespace diffsearch::cli
