// The task language: what a task is, how the sentences users write parse into
// one, how a task prints back (canonical sentence, key, JSON) and task files.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace diffsearch::partition {

enum class Model { SD15, SD21, SDXL };
enum class SamplerKind { DDIM, DPMSolverPP, UniPC };
// Declared in canonical order: combinations list methods in this order.
enum class Method { DeepCache, TGate, ToMe };

const std::vector<Model>& all_models();
const std::vector<SamplerKind>& all_samplers();
const std::vector<Method>& all_methods();

// "SD1.5", "SD2.1", "SDXL".
std::string model_name(Model model);
// "sd15", "sd21", "sdxl": keys and file names.
std::string model_slug(Model model);
// "DDIM", "DPM-Solver++", "UniPC": JSON and tables.
std::string sampler_name(SamplerKind sampler);
// "ddim", "dpmsolver++", "unipc": keys and `diffsearch sample --sampler`.
std::string sampler_slug(SamplerKind sampler);
// How the grids' sentences write it: "DDIM", "DPM-Solver++", "UniPCMultistepScheduler".
std::string sampler_sentence_name(SamplerKind sampler);
// "DeepCache", "T-Gate", "ToMe".
std::string method_name(Method method);
// "deepcache", "tgate", "tome": keys, search-space files, settings JSON.
std::string method_slug(Method method);
// "deepcache+tome": the methods' slugs joined by '+', in the given order
// ("" for none). Keys of spaces, tasks and results rows use it.
std::string methods_key(const std::vector<Method>& methods);

// Alias look-ups (case, spaces, '-', '_', '/' and '.' ignored, so "SD 1.5",
// "stable-diffusion-v1-5" and "sd15" are one model). nullopt when unknown.
std::optional<Model> find_model(const std::string& text);
std::optional<SamplerKind> find_sampler(const std::string& text);
std::optional<Method> find_method(const std::string& text);
// The same, throwing InputError that names `text` and the accepted names.
Model parse_model(const std::string& text);
SamplerKind parse_sampler(const std::string& text);
Method parse_method(const std::string& text);

// Architecture facts the search spaces and the cost model depend on.
int default_resolution(Model model);  // 512, 768, 1024 px
int down_block_count(Model model);    // 4, 4, 3 UNet down blocks

// Steps accepted in a task: the noise schedule has 1000 training timesteps,
// so no sampler can take more than 1000 distinct steps.
constexpr int kMaxSteps = 1000;
constexpr double kDefaultMaxScoreLoss = 0.02;

struct Task {
  Model model = Model::SD15;
  SamplerKind sampler = SamplerKind::DDIM;
  int steps = 50;
  // Canonical order (DeepCache, T-Gate, ToMe), no duplicates; empty for a
  // basic pipeline.
  std::vector<Method> methods;
  std::optional<double> speedup;  // target, > 1
  // Relative CLIP-score loss bound, in (0, 1); only meaningful with methods.
  double max_score_loss = kDefaultMaxScoreLoss;
  std::optional<double> latency_s;      // budget, > 0; always with platform
  std::optional<std::string> platform;  // GPU name as CUDA reports it

  // 1 basic, 2 one method, 3 combined methods, 4 speedup target,
  // 5 latency budget on a platform.
  int category() const;
  bool operator==(const Task& other) const;
  bool operator!=(const Task& other) const { return !(*this == other); }
};

// Parses one sentence. Throws InputError (one line) naming the offending word
// and what would be accepted there.
Task parse_task(const std::string& sentence);
// The canonical sentence; parse_task(format_task(t)) == t.
std::string format_task(const Task& task);
// The canonical key that names a task in every file (docs/task-language.md):
//   sd15/ddim/50/basic
//   sd15/ddim/50/basic/lat1.5s@NVIDIA_H200
//   sd15/ddim/50/deepcache+tome/max/loss0.02
//   sd15/ddim/50/deepcache/x3.04/loss0.02
//   sd15/ddim/50/deepcache/lat1.5s@NVIDIA_H100_80GB_HBM3/loss0.02
std::string task_key(const Task& task);
// The task a canonical key names: task_key(parse_task_key(k)) == k for
// every key task_key writes. InputError naming the key and its wrong part.
Task parse_task_key(const std::string& key);
// A platform name as keys carry it: spaces become '_', characters outside
// [A-Za-z0-9.+-] are percent-encoded ("NVIDIA H200" -> "NVIDIA_H200").
std::string platform_key(const std::string& platform);
// {key, model, sampler, steps, methods, speedup, max_score_loss, latency_s,
//  platform, category}.
nlohmann::json task_to_json(const Task& task);
// One sentence a line; blank lines and lines starting with '#' skipped. Any
// bad line throws InputError naming the file and line, before anything runs.
std::vector<Task> read_tasks_file(const std::string& path);

// A double as Python's str(float) writes it: the shortest text that reads
// back to the same double, with ".0" on whole numbers ("2.0", "3.04", "1e-05").
std::string format_number(double value);

}  // namespace diffsearch::partition
