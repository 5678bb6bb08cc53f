// Rendering batch scripts: checking the options against each other and
// against the search arguments, then filling slurm/templates/slurm_job.sh.tmpl.
#include "slurm/batch_script.h"

#include <cctype>

#include "io/error.h"
#include "render/escape.h"
#include "render/template.h"

namespace diffsearch::slurm {
namespace {

// A value on an #SBATCH line: sbatch splits those at blanks and has no
// quoting we could rely on, so only shell-plain words pass.
std::string sbatch_value(const std::string& option, const std::string& value) {
  if (value.empty() || render::sh_word(value) != value) {
    throw InputError(option + " \"" + value + "\": an #SBATCH line can hold only letters, digits and " +
                     "@%+=:,./_- (no blanks or quotes); choose a name or path without them");
  }
  return value;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The search arguments without the ones the script sets itself (--out,
// --resume), and what it needs to know of them.
struct SearchArgs {
  std::vector<std::string> rest;
  std::string out;
  std::string device = "cpu";
  bool shard = false;
};

SearchArgs split_search_args(const std::vector<std::string>& args) {
  SearchArgs s;
  bool have_out = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value_of = [&](const std::string& name, std::string& into) {
      if (a == name) {
        if (i + 1 >= args.size()) throw InputError("search arguments: " + name + " needs a value");
        into = args[++i];
        return true;
      }
      if (starts_with(a, name + "=")) {
        into = a.substr(name.size() + 1);
        return true;
      }
      return false;
    };
    std::string value;
    if (value_of("--out", value)) {
      if (have_out) throw InputError("search arguments: --out given twice (" + s.out + ", " + value + ")");
      if (value.empty()) throw InputError("search arguments: --out needs a file name");
      s.out = value;
      have_out = true;
      continue;  // the script passes --out itself (one file per shard)
    }
    if (a == "--resume") continue;  // the script always resumes
    if (value_of("--device", value)) {
      s.device = value;
      s.rest.push_back("--device");
      s.rest.push_back(value);
      continue;
    }
    if (a == "--shard" || starts_with(a, "--shard=")) s.shard = true;
    s.rest.push_back(a);
  }
  if (!have_out) {
    throw InputError("search arguments: no --out FILE; the job needs the results file to write (and resume)");
  }
  return s;
}

// One line per option and its values, for people reading the script: a
// list of lines, each a list of words (the template quotes each with |sh).
std::vector<render::TemplateContext> arg_lines(const std::vector<std::string>& args) {
  std::vector<render::TemplateContext> lines;
  std::vector<render::TemplateContext> words;
  auto end_line = [&] {
    if (!words.empty()) lines.push_back(render::TemplateContext().list("words", std::move(words)));
    words.clear();
  };
  for (const auto& a : args) {
    const bool option = a.size() > 1 && a[0] == '-' && !std::isdigit(static_cast<unsigned char>(a[1]));
    if (option) end_line();
    words.push_back(render::TemplateContext().text("word", a).flag("later", !words.empty()));
  }
  end_line();
  return lines;
}

std::string plural(int n, const std::string& word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

}  // namespace

long parse_time_limit(const std::string& text) {
  auto number = [](const std::string& s, std::size_t max_digits) {
    return !s.empty() && s.size() <= max_digits && s.find_first_not_of("0123456789") == std::string::npos;
  };
  const auto dash = text.find('-');
  const std::string days = dash == std::string::npos ? "0" : text.substr(0, dash);
  const std::string hms = dash == std::string::npos ? text : text.substr(dash + 1);
  std::vector<std::string> parts;
  for (std::size_t pos = 0;;) {
    const auto colon = hms.find(':', pos);
    parts.push_back(hms.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  if (!number(days, 3) || parts.size() != 3 || !number(parts[0], 4) || !number(parts[1], 2) ||
      !number(parts[2], 2) || std::stol(parts[1]) > 59 || std::stol(parts[2]) > 59) {
    throw InputError("--time \"" + text + "\": expected HH:MM:SS or D-HH:MM:SS, as in 12:00:00 or 2-00:00:00");
  }
  const long seconds = ((std::stol(days) * 24 + std::stol(parts[0])) * 60 + std::stol(parts[1])) * 60 +
                       std::stol(parts[2]);
  if (seconds <= 0) throw InputError("--time " + text + ": the time limit must be longer than zero");
  return seconds;
}

std::string shard_results_path(const std::string& results, int index, int count) {
  const bool h5 = results.size() > 3 && results.compare(results.size() - 3, 3, ".h5") == 0;
  return (h5 ? results.substr(0, results.size() - 3) : results) + ".shard-" + std::to_string(index) + "-of-" +
         std::to_string(count) + ".h5";
}

std::string render_batch_script(const BatchOptions& o) {
  if (o.nodes < 1) throw InputError("--nodes " + std::to_string(o.nodes) + ": expected at least 1");
  if (o.gpus_per_node < 0) throw InputError("--gpus-per-node " + std::to_string(o.gpus_per_node) + ": expected 0 or more");
  const bool gpus = o.gpus_per_node > 0;
  int tasks_per_node = o.tasks_per_node;
  if (gpus) {
    if (tasks_per_node == 0) tasks_per_node = o.gpus_per_node + 1;
    if (tasks_per_node < o.gpus_per_node + 1) {
      throw InputError("--ntasks-per-node " + std::to_string(tasks_per_node) + ": a node with " +
                       plural(o.gpus_per_node, "GPU") + " needs " + std::to_string(o.gpus_per_node + 1) +
                       " task slots (a worker per GPU and the coordinator, on the first node); leave it out");
    }
    if (o.cpus_per_gpu < 1) throw InputError("--cpus-per-gpu " + std::to_string(o.cpus_per_gpu) + ": expected at least 1");
  } else {
    if (tasks_per_node < 1) {
      throw InputError("--gpus-per-node 0 needs --ntasks-per-node T: processes per node on CPUs (rank 0 "
                       "coordinates, the others work; 3 gives two workers on one node)");
    }
    if (o.cpus_per_task < 1) throw InputError("--cpus-per-task " + std::to_string(o.cpus_per_task) + ": expected at least 1");
  }
  if (o.array == 1 || o.array < 0 || o.array > 10000) {
    throw InputError("--array " + std::to_string(o.array) + ": expected a number of shards from 2 to 10000 (or no --array)");
  }
  const long time_s = parse_time_limit(o.time);
  if (o.signal_before_s < 1 || o.signal_before_s > 65535) {
    throw InputError("--signal-before " + std::to_string(o.signal_before_s) + ": expected 1 to 65535 seconds");
  }
  if (time_s <= o.signal_before_s) {
    throw InputError("--time " + o.time + " is not longer than --signal-before " + std::to_string(o.signal_before_s) +
                     " s: the job would be told to stop as it starts; raise --time or lower --signal-before");
  }
  DIFFSEARCH_ASSERT(!o.diffsearch.empty() && !o.workdir.empty());

  const SearchArgs args = split_search_args(o.search_args);
  if (gpus && args.device != "cuda") {
    throw InputError("the job asks for " + plural(o.gpus_per_node, "GPU") + " per node but the search arguments " +
                     (args.device == "cpu" ? std::string("do not say --device cuda") : "say --device " + args.device) +
                     "; add --device cuda (each worker takes one GPU), or render with --gpus-per-node 0");
  }
  if (!gpus && args.device != "cpu") {
    throw InputError("--gpus-per-node 0 asks for no GPUs but the search arguments say --device " + args.device +
                     "; use --device cpu, or render with --gpus-per-node G");
  }
  if (o.array > 0 && args.shard) {
    throw InputError("--array " + std::to_string(o.array) + " gives each array task its own --shard I/" +
                     std::to_string(o.array) + "; take --shard out of the search arguments");
  }

  const int processes_first = gpus ? o.gpus_per_node + 1 : tasks_per_node;
  const int workers = gpus ? o.nodes * o.gpus_per_node : o.nodes * tasks_per_node - 1;
  std::string layout = plural(o.nodes, "node") + ", " + std::to_string(gpus ? workers + 1 : o.nodes * tasks_per_node) +
                       " processes (" + std::to_string(processes_first) + " on the first node): rank 0 coordinates, " +
                       plural(workers, "worker") + (gpus ? ", one per GPU" : " on CPUs") + "; results " + args.out +
                       (o.array > 0 ? " split into " + plural(o.array, "shard") + " (" +
                                          shard_results_path(args.out, 0, o.array) + ", ...)"
                                    : "") +
                       ".";

  const std::string log_dir = o.log_dir.empty() ? "." : o.log_dir;
  const std::string log_pattern =
      sbatch_value("--log-dir", log_dir) + (o.array > 0 ? "/%x-%A_%a.out" : "/%x-%j.out");

  render::TemplateContext c;
  c.text("render_command", o.render_command)
      .text("layout", layout)
      .code("signal_before_s", std::to_string(o.signal_before_s))
      .text("job_name", sbatch_value("--job-name", o.job_name))
      .code("nodes", std::to_string(o.nodes))
      .code("tasks_per_node", std::to_string(tasks_per_node))
      .code("tasks_total", std::to_string(o.nodes * tasks_per_node))
      .flag("gpus", gpus)
      .code("gpus_per_node", std::to_string(o.gpus_per_node))
      .code("cpus_per_gpu", std::to_string(o.cpus_per_gpu))
      .code("cpus_per_task", std::to_string(o.cpus_per_task))
      .flag("overcommit", o.overcommit)
      .text("time", sbatch_value("--time", o.time))
      .flag("has_partition", !o.partition.empty())
      .text("partition", o.partition.empty() ? "" : sbatch_value("--partition", o.partition))
      .flag("has_account", !o.account.empty())
      .text("account", o.account.empty() ? "" : sbatch_value("--account", o.account))
      .flag("array", o.array > 0)
      .code("last_shard", std::to_string(o.array - 1))
      .text("workdir", sbatch_value("the working folder (--chdir)", o.workdir))
      .text("log_pattern", log_pattern)
      .text("diffsearch", o.diffsearch)
      .code("launcher", o.launcher == Launcher::srun ? "srun" : "mpirun")
      .code("threads_per_process", std::to_string(gpus ? o.cpus_per_gpu : o.cpus_per_task))
      .text("results", args.out)
      .code("shards", std::to_string(o.array))
      .list("search_args", arg_lines(args.rest));
  const render::Template script("slurm_job.sh.tmpl", embedded_template("slurm_job.sh.tmpl"));
  return script.render(c);
}

}  // namespace diffsearch::slurm
