// `diffsearch traverse`: the original traversal_search.py's command line
// (--pipe, --sched, --steps, --search_targets, --req_speedup,
// --req_score_loss, --num_samples, --batch_size) as a search of one task,
// whose answer is printed and written into search_params.json beside the
// ones earlier traversals wrote (docs/coming-from-diffbench.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <sys/stat.h>

#include "cli/command.h"
#include "cli/search_options.h"
#include "codegen/codegen.h"
#include "render/escape.h"
#include "coordinator/distill.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/log/log.h"
#include "io/result_store.h"

namespace diffsearch::cli {
namespace {

struct TraverseArgs {
  SearchArgs search;
  std::string pipe;
  std::string sched;
  int steps = 50;
  std::vector<std::string> targets;
  double req_speedup = 0;  // 0: the largest speedup within the loss bound
  double req_score_loss = partition::kDefaultMaxScoreLoss;
  std::string params = "search_params.json";
};

const char* const kPipes = "sd1.5, sd2.1 or sdxl (any case; also sd15, SD 2.1, stable-diffusion-xl, ...)";
const char* const kScheds =
    "ddim, dpm-solver++ or unipc (any case; also DDIMScheduler, dpmsolver++, DPMSolverMultistepScheduler, "
    "unipcmultistepscheduler)";
const char* const kTargets = "deepcache, tgate or tome, or several: deepcache,tome or deepcache+tome";

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

partition::Task traverse_task(const TraverseArgs& a) {
  partition::Task t;
  if (const auto m = partition::find_model(a.pipe)) t.model = *m;
  else throw InputError("--pipe \"" + a.pipe + "\": expected " + kPipes);
  if (const auto s = partition::find_sampler(a.sched)) t.sampler = *s;
  else throw InputError("--sched \"" + a.sched + "\": expected " + kScheds);
  if (a.steps < 1 || a.steps > partition::kMaxSteps) {
    throw InputError("--steps " + std::to_string(a.steps) + ": expected 1 to " + std::to_string(partition::kMaxSteps));
  }
  t.steps = a.steps;
  // "deepcache tome", "deepcache,tome" and "deepcache+tome" are one combination.
  std::vector<bool> chosen(partition::all_methods().size(), false);
  for (const auto& item : a.targets) {
    std::string word;
    for (std::size_t i = 0; i <= item.size(); ++i) {
      if (i < item.size() && item[i] != ',' && item[i] != '+' && item[i] != ' ') {
        word += item[i];
        continue;
      }
      if (word.empty()) continue;
      const auto m = partition::find_method(word);
      if (!m) throw InputError("--search_targets \"" + word + "\": expected " + kTargets);
      chosen[static_cast<std::size_t>(*m)] = true;
      word.clear();
    }
  }
  for (auto m : partition::all_methods()) {
    if (chosen[static_cast<std::size_t>(m)]) t.methods.push_back(m);
  }
  if (t.methods.empty()) throw InputError("--search_targets: expected " + std::string(kTargets));
  if (a.req_speedup != 0) {
    if (!(a.req_speedup > 1) || !std::isfinite(a.req_speedup)) {
      throw InputError("--req_speedup " + partition::format_number(a.req_speedup) +
                       ": expected a speedup above 1 (leave it out for the largest speedup within the loss bound)");
    }
    t.speedup = a.req_speedup;
  }
  if (!(a.req_score_loss > 0 && a.req_score_loss < 1)) {
    throw InputError("--req_score_loss " + partition::format_number(a.req_score_loss) +
                     ": expected a relative loss between 0 and 1, as in 0.02");
  }
  t.max_score_loss = a.req_score_loss;
  return t;
}

// A configuration without what differs between searches of different
// tasks: the task list, and the resolutions (recorded for the tasks'
// models only; compared model by model instead).
nlohmann::json without_tasks(nlohmann::json config) {
  if (config.is_object()) {
    config.erase("tasks");
    config.erase("resolution");
  }
  return config;
}

// The two configurations' resolutions joined; false when a model has two.
bool join_resolutions(const nlohmann::json& old_config, const nlohmann::json& new_config, nlohmann::json& joined) {
  joined = old_config.value("resolution", nlohmann::json::object());
  if (!joined.is_object()) return false;
  const auto added = new_config.value("resolution", nlohmann::json::object());  // not a temporary's items()
  for (const auto& [model, px] : added.items()) {
    if (joined.contains(model) && joined[model] != px) return false;
    joined[model] = px;
  }
  return true;
}

// Writes `answers` (distill's, for one task of `results`) into the params
// file, keeping the answers already there when they come from searches of
// the same configuration (tasks aside).
nlohmann::json merge_params(const std::string& path, const nlohmann::json& answers, const std::string& key,
                            const std::string& results) {
  nlohmann::json out = answers;
  nlohmann::json runs = nlohmann::json::object();  // results file -> what it holds and spent
  if (exists(path)) {
    const auto old = io::read_json_file(path, "search_params.json");
    if (!old.is_object() || old.value("_format", std::string()) != "diffsearch-search-params" ||
        old.value("_version", 0) != 1) {
      throw InputError(path + ": not a search_params.json that diffsearch distill or traverse wrote; "
                       "give another --params FILE");
    }
    const auto old_config = old.value("_config", nlohmann::json::object());
    auto differ = io::config_differences(without_tasks(old_config), without_tasks(answers["_config"]));
    nlohmann::json resolution;
    if (!join_resolutions(old_config, answers["_config"], resolution)) differ.push_back("resolution");
    if (!differ.empty()) {
      std::string fields;
      for (const auto& f : differ) fields += (fields.empty() ? "" : ", ") + f;
      throw InputError(path + ": its answers come from searches with other settings (" + fields +
                       " differ); give this search another --params FILE, or the same options as those");
    }
    for (const auto& [k, v] : old.items()) {
      if (!k.empty() && k[0] != '_' && k != key) out[k] = v;
    }
    // The task lists joined, earlier ones first.
    nlohmann::json tasks = old["_config"].value("tasks", nlohmann::json::array());
    for (const auto& t : answers["_config"]["tasks"]) {
      if (std::find(tasks.begin(), tasks.end(), t) == tasks.end()) tasks.push_back(t);
    }
    out["_config"]["tasks"] = tasks;
    out["_config"]["resolution"] = resolution;
    if (old.contains("_traverse") && old["_traverse"].is_object()) {
      runs = old["_traverse"];
    } else {
      // Written by distill: what it counted stays as one entry.
      runs["(distilled)"] = {{"rows", old.value("_rows", 0)},
                             {"spent", old.value("_spent", nlohmann::json::object())}};
    }
  }
  runs[results] = {{"rows", answers["_rows"]}, {"spent", answers["_spent"]}, {"task", key}};
  // Rows and GPU-seconds over every results file merged in (a rerun into
  // the same file replaces its entry).
  int64_t rows = 0;
  double seconds = 0, exhaustive = 0;
  bool exhaustive_known = true;
  for (const auto& [file, r] : runs.items()) {
    rows += r.value("rows", int64_t{0});
    const auto spent = r.value("spent", nlohmann::json::object());
    if (spent.contains("gpu_seconds") && spent["gpu_seconds"].is_number()) seconds += spent["gpu_seconds"].get<double>();
    if (spent.contains("gpu_seconds_exhaustive") && spent["gpu_seconds_exhaustive"].is_number()) {
      exhaustive += spent["gpu_seconds_exhaustive"].get<double>();
    } else {
      exhaustive_known = false;
    }
  }
  out["_traverse"] = runs;
  out["_rows"] = rows;
  out["_spent"] = {{"gpu_seconds", seconds},
                   {"gpu_seconds_exhaustive", exhaustive_known ? nlohmann::json(exhaustive) : nlohmann::json(nullptr)}};
  nlohmann::json counts = nlohmann::json::object();
  for (const auto& [k, v] : out.items()) {
    if (k.empty() || k[0] == '_' || !v.is_object()) continue;
    const std::string status = v.value("status", std::string("?"));
    counts[status] = counts.value(status, 0) + 1;
  }
  out["_counts"] = counts;
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw InputError(path + ": cannot write (check the folder exists and is writable)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InputError(path + ": cannot write");
}

double number(const nlohmann::json& j, const char* field) {
  return j.contains(field) && j[field].is_number() ? j[field].get<double>() : std::nan("");
}

int finish(const TraverseArgs& a, const partition::Task& task, int search_code) {
  if (search_code != exit_code::ok) return search_code;
  const std::string key = partition::task_key(task);
  const auto contents = io::read_results(a.search.out);
  const auto answers = coordinator::distill(contents, {task});
  const auto merged = merge_params(a.params, answers, key, a.search.out);
  write_text(a.params, coordinator::distill_text(merged));

  const auto& answer = answers[key];
  const std::string status = answer.value("status", std::string("?"));
  const bool macs = answers.value("_speed_measure", std::string("wall")) == "macs";
  std::string setting = "-";
  try {
    setting = codegen::setting_text(partition::setting_from_json(answer.value("params", nlohmann::json::object()), a.params));
  } catch (const InputError&) {
  }
  // The bound applies to the search's quality measure (--quality); CLIP's too when another.
  const std::string quality = answers.contains("_quality") && answers["_quality"].is_string()
                                  ? answers["_quality"].get<std::string>()
                                  : "clip";
  const double loss = answer.contains("loss") ? number(answer, "loss") : number(answer, "score_loss");
  char numbers[300];
  std::snprintf(numbers, sizeof numbers, "speedup %.2fx (%s), %s loss %.4f (bound %s)%s", number(answer, "speedup"),
                macs ? "MAC ratio" : "wall clock", quality == "clip" ? "CLIP score" : quality == "ssim" ? "SSIM" : "PSNR",
                loss, partition::format_number(task.max_score_loss).c_str(),
                quality == "clip" ? "" : (", CLIP score loss " + std::to_string(number(answer, "score_loss"))).c_str());
  std::printf("%s: %s\n", key.c_str(), status.c_str());
  if (status == "ok" || status == "infeasible") {
    std::printf("  %s%s\n  %s\n  params: %s\n", status == "infeasible" ? "no setting meets the goal; the nearest: " : "",
                setting.c_str(), numbers, answer.value("params", nlohmann::json::object()).dump().c_str());
  }
  std::size_t kept = 0;
  for (const auto& [s, n] : merged["_counts"].items()) kept += n.get<std::size_t>();
  std::printf("  written to %s (%zu answers); rows in %s\n", a.params.c_str(), kept, a.search.out.c_str());
  if (status == "ok") {
    std::printf("  code: diffsearch codegen --params %s -o code/  (the original five tasks; --tasks FILE for others)\n",
                render::sh_word(a.params).c_str());
  }
  std::fflush(stdout);
  return status == "ok" || status == "infeasible" ? exit_code::ok : exit_code::failed;
}

Runner setup_traverse(CLI::App& sub) {
  auto a = std::make_shared<TraverseArgs>();
  const char* group = "The original traversal_search.py's options";
  sub.add_option("--pipe", a->pipe, std::string("The pipeline: ") + kPipes)->required()->group(group);
  sub.add_option("--sched", a->sched, std::string("The sampler: ") + kScheds)->required()->group(group);
  sub.add_option("--steps", a->steps, "Sampling steps")->capture_default_str()->group(group);
  sub.add_option("--search_targets", a->targets, std::string("The methods to search: ") + kTargets)
      ->required()
      ->group(group);
  sub.add_option("--req_speedup", a->req_speedup,
                 "The speedup to reach at the least loss (leave out: the largest speedup within the loss bound)")
      ->group(group);
  sub.add_option("--req_score_loss", a->req_score_loss, "The relative CLIP score loss bound")
      ->capture_default_str()
      ->group(group);
  sub.add_option("--params", a->params, "search_params.json to write the answer into (extended when it exists)")
      ->capture_default_str()
      ->type_name("FILE");
  add_search_options(sub, a->search, SearchOptionSet{false, true});
  sub.footer(
      "Example (the original's command line, plus where the models are):\n"
      "  diffsearch traverse --num_samples 32 --search_targets deepcache --batch_size 8 --pipe sd1.5 \\\n"
      "      --sched ddim --steps 50 --req_speedup 3.04 --req_score_loss 0.02 --models models.json --clip clip/\n"
      "Results go to --out (default traverse_<task>.h5; an existing one is continued, not measured again).\n"
      "Exit codes: 0 answered (or no setting meets the goal: the nearest is printed), 1 the search failed,\n"
      "2 bad input, 75 interrupted (run the same command again).");
  return [a]() {
    const auto task = traverse_task(*a);
    const std::string key = partition::task_key(task);
    if (a->search.out.empty()) a->search.out = "traverse_" + codegen::file_safe_key(key) + ".h5";
    // The same command again continues (or just re-reads) its own file.
    // Every rank decides alike: rank 0 creates the file only after MPI_Init,
    // which waits for every rank to start.
    if (exists(a->search.out) || exists(a->search.out + ".journal")) {
      if (!a->search.resume) log::info("traverse: " + a->search.out + " exists: continuing it");
      a->search.resume = true;
    }
    a->search.command_line = own_command_line();
    return run_search(
        [a, task] { return build_search_options(a->search, {task}, "diffsearch traverse", "traverse"); },
        [a, task](int code) { return finish(*a, task, code); });
  };
}

DIFFSEARCH_COMMAND("traverse",
                   "The original traversal_search.py's flags: search one task, print and keep its answer",
                   setup_traverse);

}  // namespace
}  // namespace diffsearch::cli
