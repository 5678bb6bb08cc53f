// Writes the seed corpora of the fuzz targets into OUT/<target>/: a real
// (fake-evaluator) search's journal and answers, small safetensors files,
// the task grids' sentences, search spaces, models files and prompts. Seeds
// come from running the project's own code, so they follow its formats.
//   fuzz_make_seeds OUT
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "coordinator/distill.h"
#include "coordinator/search.h"
#include "fuzz/fuzz_support.h"
#include "fuzz/search_seed.h"
#include "io/prompts.h"
#include "io/result_store.h"
#include "io/safetensors.h"
#include "partition/grid.h"

using namespace diffsearch;
namespace fs = std::filesystem;

namespace {

fs::path out_root;
int counter = 0;

void seed(const std::string& target, const std::string& bytes) {
  fs::create_directories(out_root / target);
  std::ofstream(out_root / target / ("seed-" + std::to_string(++counter)), std::ios::binary) << bytes;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void safetensors_seeds() {
  const fs::path dir = out_root / "tmp";
  fs::create_directories(dir);
  std::vector<io::TensorData> tensors = {
      {"a", io::DType::F32, {2, 2}, std::vector<std::uint8_t>(16, 1)},
      {"b.bias", io::DType::F16, {3}, std::vector<std::uint8_t>(6, 2)},
      {"empty", io::DType::I64, {0, 4}, {}},
      {"flag", io::DType::BOOL, {}, {1}},
  };
  io::write_safetensors((dir / "x.safetensors").string(), tensors, {{"format", "pt"}});
  seed("safetensors", slurp(dir / "x.safetensors"));
  io::write_safetensors((dir / "y.safetensors").string(), {tensors[1]});
  seed("safetensors", slurp(dir / "y.safetensors"));
  seed("safetensors", slurp(fs::path(DIFFSEARCH_SOURCE_DIR) / "tests/data/fixtures/reference/init-latents.safetensors"));
}

void task_seeds() {
  std::set<std::string> sentences;
  for (const auto& t : fuzz::tasks()) sentences.insert(partition::format_task(t));
  for (int c = 1; c <= 5; ++c) {
    const auto grid = partition::make_grid(c);
    for (std::size_t i = 0; i < grid.size(); i += std::max<std::size_t>(1, grid.size() / 6)) {
      sentences.insert(partition::format_task(grid[i]));
    }
  }
  sentences.insert("sd15 ddim 20 deepcache tome 2x loss 0.05");
  sentences.insert("Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, with 1.5s latency on \"NVIDIA H200\"");
  std::string file = "# tasks\n\n";
  for (const auto& s : sentences) {
    seed("task", s);
    file += s + "\n";
  }
  seed("task", file);
}

void space_seeds() {
  seed("space", R"({"deepcache": {"cache_interval": [2, 3], "cache_branch_id": [0, 1]}, "tome": {"ratio": [0.3, 0.5]}})");
  seed("space", R"({"_comment": "x", "tgate": {"gate_step_fraction": [0.2, 0.5], "sp_interval": [1], "warm_up": [0, 2]}})");
  seed("space", R"({"ToMe": {"ratio": [0.1], "max_downsample": [1]}, "SDXL": {"tome": {"max_downsample": [2, 4]}}})");
  seed("space", R"({"T-Gate": {"gate_step": [5, 10], "fi_interval": [1]}, "sd21": {"deepcache": {"cache_branch_id": [11]}}})");
  seed("space", R"({"tome": {"use_rand": [false, true], "sx": [2], "sy": [2]}})");
}

void models_seeds() {
  seed("models", R"({"SD1.5": "tiny-sd15", "SD2.1": "/models/sd21", "SDXL": "../sdxl", "_note": "folders"})");
  seed("models", R"({"stable-diffusion-v1-5": "a"})");
}

void tokenizer_seeds() {
  const auto& prompts = io::default_prompts();
  for (std::size_t i = 0; i < prompts.size(); i += 10) seed("tokenizer", prompts[i]);
  seed("tokenizer", "a photo of an astronaut riding a horse on mars");
  seed("tokenizer", "Ünïcödé café — 東京の夜景, emoji 🚀🚀 and numbers 1234567 it's can't");
  seed("tokenizer", std::string(300, 'a') + " " + std::string(80, '!'));
}

void results_seeds() {
  const fs::path dir = out_root / "tmp" / "search";
  fs::remove_all(dir);
  fs::create_directories(dir);
  coordinator::SearchOptions o = fuzz::seed_search_options("");
  for (const char* strategy : {"exhaustive", "frontier"}) {
    o.strategy = strategy;
    if (o.strategy == "frontier") o.evaluator = "synthetic:seed=3";
    o.out = (dir / (std::string(strategy) + ".h5")).string();
    // The latency task goes unanswered where the evaluator names no GPU: 1 is fine.
    if (coordinator::run_search_local(o) > 1) throw Error("seed search failed");
    const std::string journal = o.out + ".journal";
    if (fs::exists(journal)) seed("results", std::string(1, '\0') + slurp(journal));
    const auto contents = io::read_results(o.out);
    seed("search_params", coordinator::distill_text(coordinator::distill(contents, o.tasks)));
  }
  // The HDF5 form: any odd first byte; the rest steers the builder.
  for (int i = 0; i < 4; ++i) seed("results", std::string(1, '\1') + std::string(64 + i * 64, static_cast<char>(i * 37)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds OUT\n");
    return 2;
  }
  fuzz::quiet_logs();
  out_root = argv[1];
  safetensors_seeds();
  task_seeds();
  space_seeds();
  models_seeds();
  tokenizer_seeds();
  results_seeds();
  fs::remove_all(out_root / "tmp");
  return 0;
}
