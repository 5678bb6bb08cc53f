// Results-file benchmark: how fast rows reach the HDF5 file and the journal,
// as a search writes them (rows buffered, flushed to /evaluations and
// /prompt_scores in batches; the journal written per row and synced per
// group or per row). Prints a table and writes JSON.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/result_store.h"

using namespace diffsearch;
namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A row as the engine evaluator fills it: realistic keys and a few prompts.
io::EvaluationRow make_row(std::size_t i, int prompts) {
  io::EvaluationRow r;
  r.unit_key = "sd15/ddim/50/deepcache/cache_branch_id=0,cache_interval=" + std::to_string(i);
  r.space_key = "sd15/ddim/50/deepcache";
  r.baseline_key = "sd15/ddim/50/512";
  r.model = "SD1.5";
  r.sampler = "DDIM";
  r.steps = 50;
  r.resolution = 512;
  r.methods = "deepcache";
  r.setting = R"({"deepcache":{"cache_branch_id":0,"cache_interval":)" + std::to_string(i) + "}}";
  r.status = "ok";
  r.num_samples = prompts;
  r.batch_size = 8;
  r.time_base_s = 1.5;
  r.time_acc_s = 0.5;
  r.speedup = 3.0;
  r.speedup_macs = 3.1;
  r.clip_base = 31.2;
  r.clip_acc = 30.9;
  r.score_loss = 0.0096;
  r.psnr = 27.5;
  r.ssim = 0.81;
  r.macs_base = 41434200000000;
  r.macs_acc = 11833400000000;
  r.peak_bytes = 2791728742;
  r.device = "NVIDIA H200";
  r.host = "node001";
  r.rank = static_cast<int64_t>(1 + i % 7);
  r.started_at = 1.7e9 + static_cast<double>(i);
  r.finished_at = r.started_at + 2;
  r.run_id = "bench";
  for (int p = 0; p < prompts; ++p) r.prompts.push_back({p, 31.0, 30.8, 27.0, 0.8});
  return r;
}

// Appends `rows` rows; the journal synced every `group` rows (0: only at
// each HDF5 flush, which syncs it first); HDF5 flushed every 256 rows.
nlohmann::json run(const fs::path& dir, const std::string& name, std::size_t rows, int prompts,
                   std::size_t group) {
  const fs::path path = dir / (name + ".h5");
  fs::remove(path);
  fs::remove(path.string() + ".journal");
  auto store = io::ResultStore::open(path.string(), {{"bench", name}}, /*resume=*/false);
  double h5_s = 0;
  const double t0 = now_s();
  for (std::size_t i = 0; i < rows; ++i) {
    store.append(make_row(i, prompts), /*defer_sync=*/true);
    if (group > 0 && (i + 1) % group == 0) store.sync();
    if ((i + 1) % 256 == 0) {
      store.sync();  // the journal first, so that flush() times HDF5 alone
      const double f0 = now_s();
      store.flush();
      h5_s += now_s() - f0;
    }
  }
  store.sync();
  const double f0 = now_s();
  store.close();
  h5_s += now_s() - f0;
  const double total_s = now_s() - t0;
  const auto size = fs::file_size(path);
  std::printf("%-28s %9zu rows %4d prompts  total %9.0f rows/s  HDF5 alone %10.0f rows/s  %6.1f MB\n",
              name.c_str(), rows, prompts, rows / total_s, rows / h5_s, size / 1e6);
  // Check the file holds what was written (a benchmark of a broken writer
  // would be meaningless).
  const auto back = io::read_results(path.string());
  if (back.rows.size() != rows) {
    throw Error(path.string() + ": wrote " + std::to_string(rows) + " rows, read back " +
                std::to_string(back.rows.size()));
  }
  return {{"name", name}, {"rows", rows}, {"prompts_per_row", prompts}, {"sync_group", group},
          {"total_s", total_s}, {"rows_per_s", rows / total_s}, {"hdf5_s", h5_s},
          {"hdf5_rows_per_s", rows / h5_s}, {"file_bytes", size}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string out_json = "bench_results.json";
    fs::path dir = fs::temp_directory_path() / "diffsearch-bench-results";
    std::size_t rows = 200000;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--json" && i + 1 < argc) out_json = argv[++i];
      else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
      else if (a == "--rows" && i + 1 < argc) rows = std::stoul(argv[++i]);
      else throw InputError("usage: bench_results [--rows N] [--dir DIR] [--json FILE]");
    }
    fs::create_directories(dir);
    nlohmann::json out = {{"cases", nlohmann::json::array()}};
    // The journal synced once per 256-row HDF5 flush: what HDF5 and the
    // JSON lines cost.
    out["cases"].push_back(run(dir, "sync_per_flush", rows, 0, 0));
    out["cases"].push_back(run(dir, "sync_per_flush_8_prompts", rows / 4, 8, 0));
    // A group commit of 7 rows (7 workers answered together), and one
    // fdatasync per row: what the disk's sync latency allows.
    out["cases"].push_back(run(dir, "sync_every_7_rows", rows / 20, 0, 7));
    out["cases"].push_back(run(dir, "sync_every_row", rows / 100, 0, 1));
    std::ofstream(out_json) << out.dump(2) << "\n";
    fs::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
