// The replay evaluator: answers measurement units from a recorded results
// file (an exhaustive run), so strategies can be compared on real measurements without a GPU.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/result_store.h"
#include "worker/evaluator.h"

namespace diffsearch::coordinator {

// `--evaluator replay:FILE.h5` (docs/evaluators.md). The file is read once,
// at construction (InputError if it cannot be). A unit is answered from the
// first ok row of its unit_key whose per-prompt scores cover the unit's
// prompts [first_prompt, first_prompt + prompts.size()); times, MACs and
// GPU-seconds are the row's, divided evenly among its prompts.
class ReplayEvaluator : public worker::Evaluator {
 public:
  explicit ReplayEvaluator(const std::string& path);
  // InputError naming the unit and the file when the file has no ok row of
  // the unit, or none that covers its prompt range.
  worker::EvaluationRecord evaluate(const worker::MeasurementUnit& unit) override;
  // The device the file's ok rows were mostly measured on ("replay" if none).
  std::string gpu_name(const std::string& device) override { return device_; }
  // The recorded GPU-seconds per prompt times the unit's prompts; nullopt
  // for a unit the file does not hold (the caller extrapolates).
  std::optional<double> estimate_seconds(const worker::MeasurementUnit& unit) override;

  std::size_t unit_count() const { return units_.size(); }

 private:
  // What replay needs of one ok row, prompts sorted by their global index.
  struct Recorded {
    double time_base_s = 0;
    double time_acc_s = 0;
    int64_t macs_base = 0;
    int64_t macs_acc = 0;
    int64_t peak_bytes = 0;
    double gpu_seconds = 0;
    int64_t prompt_count = 0;  // the prompts the row's numbers are for
    int64_t prompt_begin = 0;  // its range, for messages
    int64_t prompt_end = 0;
    std::string device;
    std::vector<io::PromptScore> prompts;
  };
  bool covers(const Recorded& row, int64_t begin, int64_t end) const;
  const std::vector<Recorded>& rows_of(const worker::MeasurementUnit& unit) const;

  std::string path_;
  int64_t samples_ = 0;  // the recorded search's prompts per unit; 0 if its configuration lacks it
  std::optional<uint64_t> seed_;
  std::string device_ = "replay";
  std::unordered_map<std::string, std::vector<Recorded>> units_;
};

}  // namespace diffsearch::coordinator
