// The results file and its journal: schema, JSON lines with fsync, replay of a
// torn journal, atomic rebuild of the HDF5 file, configuration checks.
#include "io/result_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>
#include <variant>

#include "io/error.h"
#include "io/failure.h"
#include "io/log/log.h"

namespace diffsearch::io {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// JSON has no NaN: a number not measured travels as null.
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double get_num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}
// Absent or null reads as 0 (lines older than the field); anything but an
// integer is damage: a float would not even convert (1e300 has no int64).
int64_t get_int(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number_integer()) {
    throw InputError(std::string("field \"") + key + "\" is " + it->dump() + ", not an integer");
  }
  return it->get<int64_t>();
}
std::string get_str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || !it->is_string() ? std::string() : it->get<std::string>();
}

// /evaluations, column by column: the one list that the HDF5 schema, the
// table's reads and writes, and the journal's JSON all follow. A new column
// is one line here (at the end, so older files' positions stay) plus its
// field in EvaluationRow. `legacy`, for a column added after files were
// written without it, fills in what such a row would have held, once every
// other field is read.
struct RowColumn {
  const char* name;
  std::variant<std::string EvaluationRow::*, int64_t EvaluationRow::*, double EvaluationRow::*> field;
  bool added_later = false;
  void (*legacy)(EvaluationRow&) = nullptr;
};

void legacy_prompt_end(EvaluationRow& r) { r.prompt_end = r.num_samples; }
void legacy_gpu_seconds(EvaluationRow& r) {
  r.gpu_seconds = std::isfinite(r.started_at) && std::isfinite(r.finished_at) && r.finished_at >= r.started_at
                      ? r.finished_at - r.started_at
                      : std::numeric_limits<double>::quiet_NaN();
}
// Out of memory by the error's text, else transient (io/failure.h).
void legacy_error_kind(EvaluationRow& r) { r.error_kind = legacy_failure_kind(r.status, r.error); }

using R = EvaluationRow;
const std::vector<RowColumn>& columns() {
  static const std::vector<RowColumn> list = {
      {"unit_key", &R::unit_key},
      {"space_key", &R::space_key},
      {"baseline_key", &R::baseline_key},
      {"model", &R::model},
      {"sampler", &R::sampler},
      {"steps", &R::steps},
      {"resolution", &R::resolution},
      {"methods", &R::methods},
      {"setting", &R::setting},
      {"status", &R::status},
      {"error", &R::error},
      {"attempt", &R::attempt},
      {"num_samples", &R::num_samples},
      {"batch_size", &R::batch_size},
      {"seed", &R::seed},
      {"prompt_begin", &R::prompt_begin, true},  // older rows: 0, right as it is
      {"prompt_end", &R::prompt_end, true, legacy_prompt_end},
      {"time_base_s", &R::time_base_s},
      {"time_acc_s", &R::time_acc_s},
      {"speedup", &R::speedup},
      {"speedup_macs", &R::speedup_macs},
      {"clip_base", &R::clip_base},
      {"clip_acc", &R::clip_acc},
      {"score_loss", &R::score_loss},
      {"psnr", &R::psnr},
      {"ssim", &R::ssim},
      {"macs_base", &R::macs_base},
      {"macs_acc", &R::macs_acc},
      {"peak_bytes", &R::peak_bytes},
      {"device", &R::device},
      {"host", &R::host},
      {"rank", &R::rank},
      {"started_at", &R::started_at},
      {"finished_at", &R::finished_at},
      {"gpu_seconds", &R::gpu_seconds, true, legacy_gpu_seconds},
      {"run_id", &R::run_id},
      {"error_kind", &R::error_kind, true, legacy_error_kind},
  };
  return list;
}

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

Row row_values(const EvaluationRow& r) {
  Row row;
  row.reserve(columns().size());
  for (const auto& c : columns()) {
    std::visit([&](auto field) { row.emplace_back(r.*field); }, c.field);
  }
  return row;
}

// `present[i]`: whether the file has column i (older files lack the ones
// added later; their legacy values are derived here).
EvaluationRow row_from_values(const Row& v, const std::vector<bool>& present) {
  EvaluationRow r;
  for (std::size_t i = 0; i < columns().size(); ++i) {
    std::visit([&](auto field) { r.*field = std::get<std::remove_reference_t<decltype(r.*field)>>(v[i]); },
               columns()[i].field);
  }
  for (std::size_t i = 0; i < columns().size(); ++i) {
    if (!present[i] && columns()[i].legacy) columns()[i].legacy(r);
  }
  return r;
}

// What readers of rows (distill, status, merge) rely on beyond the types:
// the setting column is setting_key's JSON object text. Throws InputError
// naming the field.
// (Empty: none recorded, as rows written by hand in tests.)
void check_row(const EvaluationRow& r) {
  if (r.setting.empty()) return;
  const auto setting = nlohmann::json::parse(r.setting, nullptr, false);
  if (!setting.is_object()) {
    throw InputError("field \"setting\" of unit \"" + r.unit_key + "\" is \"" + r.setting.substr(0, 80) +
                     "\", not a setting's JSON object");
  }
}

struct Journal {
  nlohmann::json header;
  std::vector<nlohmann::json> runs;
  std::vector<EvaluationRow> rows;
  std::size_t valid_bytes = 0;  // the prefix of whole, parseable lines
  bool torn = false;
};

// A kill can leave the last line half written; only that line may be broken.
Journal read_journal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read the results journal");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  Journal journal;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    ++line_no;
    if (end == std::string::npos) {  // no newline: torn
      journal.torn = true;
      break;
    }
    const std::string line = text.substr(pos, end - pos);
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      if (end + 1 >= text.size()) {
        journal.torn = true;
        break;
      }
      throw InputError(path + ": line " + std::to_string(line_no) +
                       " is not JSON; the journal is damaged (remove it to fall back on the HDF5 file)");
    }
    const std::string kind = get_str(record, "kind");
    // Readers index these without checking: one place refuses damage.
    auto damaged = [&](const std::string& what) {
      return InputError(path + ": line " + std::to_string(line_no) + ": " + what +
                        "; the journal is damaged (remove it to fall back on the HDF5 file)");
    };
    if (kind == "header" && record.contains("config") && !record["config"].is_object()) {
      throw damaged("the header's \"config\" is not a JSON object");
    }
    if (kind == "run" && (!record.contains("run_id") || !record["run_id"].is_string() ||
                          !record.contains("attributes") || !record["attributes"].is_object())) {
      throw damaged("a run record needs a string \"run_id\" and an object \"attributes\"");
    }
    if (kind == "header") {
      if (get_str(record, "format") != kResultsFormat) {
        throw InputError(path + ": not a diffsearch results journal (format \"" +
                         get_str(record, "format") + "\")");
      }
      journal.header = record;
    } else if (kind == "run") {
      journal.runs.push_back(record);
    } else if (kind == "evaluation") {
      try {
        journal.rows.push_back(EvaluationRow::from_json(record));
        check_row(journal.rows.back());
      } catch (const InputError& e) {
        throw damaged(std::string("an evaluation's ") + e.what());
      }
    }
    pos = end + 1;
    journal.valid_bytes = pos;
  }
  if (journal.header.is_null() && !journal.rows.empty()) {
    throw InputError(path + ": the journal has no header line");
  }
  return journal;
}

ResultsContents contents_from_journal(Journal&& journal) {
  ResultsContents c;
  c.config = journal.header.is_null() || !journal.header.contains("config") ? nlohmann::json::object()
                                                                            : journal.header["config"];
  // A run is recorded when it starts and again when it ends; the last wins.
  std::map<std::string, std::size_t> seen;
  for (auto& r : journal.runs) {
    const std::string id = get_str(r, "run_id");
    auto it = seen.find(id);
    if (it != seen.end()) {
      c.runs[it->second]["attributes"] = r["attributes"];
    } else {
      seen[id] = c.runs.size();
      c.runs.push_back({{"run_id", id}, {"attributes", r["attributes"]}});
    }
  }
  c.rows = std::move(journal.rows);
  c.from_journal = true;
  return c;
}

// `absent_columns`, when given, receives the /evaluations columns the file
// predates (read as their legacy values).
ResultsContents read_h5(const std::string& path, std::vector<std::string>* absent_columns = nullptr) {
  H5File file = H5File::open(path, false);
  if (!file.has_attribute("/", "format") || file.string_attribute("/", "format") != kResultsFormat) {
    throw InputError(path + ": an HDF5 file, but not a diffsearch results file (no format=\"" +
                     std::string(kResultsFormat) +
                     "\" attribute); pass a results.h5 written by diffsearch search");
  }
  const std::string version = file.string_attribute("/", "version");
  if (version != std::to_string(kResultsVersion)) {
    throw InputError(path + ": results format version " + version + ", this diffsearch reads version " +
                     std::to_string(kResultsVersion));
  }
  ResultsContents c;
  c.config = nlohmann::json::parse(file.string_attribute("/", "config"), nullptr, false);
  if (!c.config.is_object()) {
    throw InputError(path + ": the root attribute 'config' is not a JSON object; the file is damaged (use the "
                     "file as diffsearch search wrote it, or rerun the search)");
  }
  for (const auto& id : file.list_group("/runs")) {
    nlohmann::json attributes = nlohmann::json::object();
    if (file.has_attribute("/runs/" + id, "attributes")) {
      attributes = nlohmann::json::parse(file.string_attribute("/runs/" + id, "attributes"), nullptr, false);
    }
    if (!attributes.is_object()) {
      throw InputError(path + ": the attribute 'attributes' of /runs/" + id +
                       " is not a JSON object; the file is damaged (use the file as diffsearch search "
                       "wrote it, or rerun the search)");
    }
    c.runs.push_back({{"run_id", id}, {"attributes", attributes}});
  }
  H5Table evaluations(file, "/evaluations", evaluations_schema());
  std::vector<bool> present;
  for (const auto& column : columns()) present.push_back(evaluations.has_column(column.name));
  for (const auto& values : evaluations.read_all()) {
    EvaluationRow row = row_from_values(values, present);
    try {
      check_row(row);
    } catch (const InputError& e) {
      throw InputError(path + ": /evaluations row " + std::to_string(c.rows.size()) + ": " + e.what() +
                       "; the file is damaged (use the file as diffsearch search wrote it, or rerun the search)");
    }
    c.rows.push_back(std::move(row));
  }
  if (absent_columns) *absent_columns = evaluations.absent_columns();
  H5Table prompts(file, "/prompt_scores", prompt_scores_schema());
  for (const auto& v : prompts.read_all()) {
    const int64_t row = std::get<int64_t>(v[1]);
    if (row < 0 || row >= static_cast<int64_t>(c.rows.size())) continue;
    c.rows[row].prompts.push_back(PromptScore{std::get<int64_t>(v[2]), std::get<double>(v[3]),
                                              std::get<double>(v[4]), std::get<double>(v[5]),
                                              std::get<double>(v[6])});
  }
  return c;
}

void append_rows(H5File& file, const std::vector<EvaluationRow>& rows, std::size_t from,
                 int64_t& prompt_rows_written) {
  if (from >= rows.size()) return;
  std::vector<Row> eval_rows;
  std::vector<Row> prompt_rows;
  for (std::size_t i = from; i < rows.size(); ++i) {
    eval_rows.push_back(row_values(rows[i]));
    for (const auto& p : rows[i].prompts) {
      prompt_rows.push_back(Row{rows[i].unit_key, static_cast<int64_t>(i), p.prompt_index,
                                p.clip_base, p.clip_acc, p.psnr, p.ssim});
    }
  }
  H5Table(file, "/evaluations", evaluations_schema()).append(eval_rows);
  H5Table(file, "/prompt_scores", prompt_scores_schema()).append(prompt_rows);
  prompt_rows_written += static_cast<int64_t>(prompt_rows.size());
}

void write_run(H5File& file, const std::string& run_id, const nlohmann::json& attributes) {
  const std::string group = "/runs/" + run_id;
  file.create_group(group);
  file.set_attribute(group, "attributes", attributes.dump());
  for (const auto& [key, value] : attributes.items()) {
    if (key == "attributes") continue;
    file.set_attribute(group, key, value.is_string() ? value.get<std::string>() : value.dump());
  }
}

void fsync_dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  int fd = ::open(dir.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// An HDF5 file of an earlier format (lacking `absent` /evaluations columns)
// is rewritten with every column, its rows given their legacy values: appends
// cannot fill columns a table lacks.
bool predates_columns(const std::string& path, const std::vector<std::string>& absent) {
  if (absent.empty()) return false;
  std::string names;
  for (const auto& n : absent) names += (names.empty() ? "" : ", ") + n;
  log::info(path + ": written by an earlier diffsearch without the columns " + names + "; rewriting it with them");
  return true;
}

int64_t count_prompt_rows(const std::vector<EvaluationRow>& rows) {
  int64_t n = 0;
  for (const auto& r : rows) n += static_cast<int64_t>(r.prompts.size());
  return n;
}

}  // namespace

nlohmann::json EvaluationRow::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : columns()) {
    std::visit(Overloaded{[&](double EvaluationRow::*field) { j[c.name] = num(this->*field); },
                          [&](auto field) { j[c.name] = this->*field; }},
               c.field);
  }
  nlohmann::json prompt_list = nlohmann::json::array();
  for (const auto& p : prompts) {
    prompt_list.push_back({p.prompt_index, num(p.clip_base), num(p.clip_acc), num(p.psnr), num(p.ssim)});
  }
  j["prompts"] = prompt_list;
  return j;
}

EvaluationRow EvaluationRow::from_json(const nlohmann::json& j) {
  EvaluationRow r;
  for (const auto& c : columns()) {
    std::visit(Overloaded{[&](std::string EvaluationRow::*field) { r.*field = get_str(j, c.name); },
                          [&](int64_t EvaluationRow::*field) { r.*field = get_int(j, c.name); },
                          [&](double EvaluationRow::*field) { r.*field = get_num(j, c.name); }},
               c.field);
  }
  // Only lines journaled before a key existed lack it (a NaN gpu_seconds is
  // written as null, not left out).
  for (const auto& c : columns()) {
    if (c.legacy && !j.contains(c.name)) c.legacy(r);
  }
  if (auto it = j.find("prompts"); it != j.end() && it->is_array()) {
    for (const auto& p : *it) {
      if (!p.is_array() || p.size() != 5) continue;
      auto d = [&](int i) {
        return p[i].is_number() ? p[i].get<double>() : std::numeric_limits<double>::quiet_NaN();
      };
      if (!p[0].is_number_integer()) {
        throw InputError("field \"prompts\" holds a prompt index " + p[0].dump() + ", not an integer");
      }
      r.prompts.push_back(PromptScore{p[0].get<int64_t>(), d(1), d(2), d(3), d(4)});
    }
  }
  return r;
}

const Schema& evaluations_schema() {
  static const Schema schema = [] {
    Schema out;
    for (const auto& c : columns()) {
      // A column added later is optional on read; its value there is a
      // placeholder of the right type (row_from_values derives the legacy one).
      const ColumnType type = std::visit(Overloaded{[](std::string EvaluationRow::*) { return ColumnType::string; },
                                                    [](int64_t EvaluationRow::*) { return ColumnType::int64; },
                                                    [](double EvaluationRow::*) { return ColumnType::float64; }},
                                         c.field);
      std::optional<Value> placeholder;
      if (c.added_later) {
        placeholder = std::visit([](auto field) { return Value(std::remove_reference_t<decltype(EvaluationRow().*field)>()); },
                                 c.field);
      }
      out.push_back({c.name, type, placeholder});
    }
    return out;
  }();
  return schema;
}

const Schema& prompt_scores_schema() {
  using T = ColumnType;
  static const Schema schema = {{"unit_key", T::string},   {"row", T::int64},
                                {"prompt_index", T::int64}, {"clip_base", T::float64},
                                {"clip_acc", T::float64},  {"psnr", T::float64},
                                {"ssim", T::float64}};
  return schema;
}

std::vector<std::string> config_differences(const nlohmann::json& a, const nlohmann::json& b) {
  std::vector<std::string> fields;
  if (!a.is_object() || !b.is_object()) {
    if (a != b) fields.push_back("config");
    return fields;
  }
  std::map<std::string, int> keys;
  for (const auto& [k, v] : a.items()) keys[k] |= 1;
  for (const auto& [k, v] : b.items()) keys[k] |= 2;
  for (const auto& [k, present] : keys) {
    if (present != 3 || a.at(k) != b.at(k)) fields.push_back(k);
  }
  return fields;
}

ResultsContents read_results(const std::string& path) {
  const std::string journal_path = path + ".journal";
  ResultsContents contents =
      file_exists(journal_path) ? contents_from_journal(read_journal(journal_path)) : read_h5(path);
  contents.path = path;
  return contents;
}

void write_results_h5(const std::string& path, const ResultsContents& contents) {
  const std::string tmp = path + ".rebuild.tmp";
  {
    H5File file = H5File::create(tmp);
    file.set_attribute("/", "format", kResultsFormat);
    file.set_attribute("/", "version", kResultsVersion);
    file.set_attribute("/", "config", contents.config.dump());
    H5Table::create(file, "/evaluations", evaluations_schema());
    H5Table::create(file, "/prompt_scores", prompt_scores_schema());
    file.create_group("/runs");
    for (const auto& run : contents.runs) {
      write_run(file, run.at("run_id").get<std::string>(), run.at("attributes"));
    }
    int64_t prompt_rows = 0;
    append_rows(file, contents.rows, 0, prompt_rows);
    file.flush();
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw Error(path + ": cannot replace the results file with its rebuilt copy " + tmp);
  }
  fsync_dir_of(path);
}

ResultStore ResultStore::open(const std::string& path, const nlohmann::json& config, bool resume) {
  const std::string journal_path = path + ".journal";
  const bool have_h5 = file_exists(path);
  const bool have_journal = file_exists(journal_path);
  if (!resume && (have_h5 || have_journal)) {
    throw InputError(path + ": the results file already exists; pass --resume to continue it, or "
                            "remove it (and " + journal_path + ") to start over");
  }
  ResultStore store;
  store.path_ = path;
  store.config_ = config;
  ResultsContents contents;
  contents.config = config;
  bool rebuild = true;
  std::size_t journal_valid = 0;
  bool journal_has_header = false;
  if (have_journal) {
    Journal journal = read_journal(journal_path);
    journal_valid = journal.valid_bytes;
    journal_has_header = !journal.header.is_null();
    if (journal.torn) log::warn(journal_path + ": dropped a torn last line (the run was killed while writing it)");
    if (journal_has_header) {
      contents = contents_from_journal(std::move(journal));
      // Still damaged or behind? The journal wins; the HDF5 copy is rebuilt.
      if (have_h5) {
        try {
          std::vector<std::string> absent;
          ResultsContents h5 = read_h5(path, &absent);
          rebuild = h5.rows.size() != contents.rows.size() || h5.runs.size() != contents.runs.size() ||
                    count_prompt_rows(h5.rows) != count_prompt_rows(contents.rows) ||
                    predates_columns(path, absent);
        } catch (const InputError& e) {
          log::warn(std::string("rebuilding the HDF5 file from its journal: ") + e.what());
        }
      }
    }
  } else if (have_h5) {
    std::vector<std::string> absent;
    contents = read_h5(path, &absent);  // InputError for non-HDF5 or another tool's file
    rebuild = predates_columns(path, absent);
  }
  if (resume && (have_h5 || journal_has_header)) {
    const auto diff = config_differences(contents.config, config);
    if (!diff.empty()) {
      std::string fields;
      for (const auto& f : diff) fields += (fields.empty() ? "" : ", ") + f;
      // The file's strategy is the likeliest difference since strategies
      // came: say which one it was.
      const bool strategy = std::find(diff.begin(), diff.end(), "strategy") != diff.end();
      const std::string hint =
          !strategy ? ""
                    : contents.config.contains("strategy") ? " (the file was searched with --strategy " +
                                                                  contents.config.value("strategy", std::string()) + ")"
                                                            : " (the file was searched exhaustively: add --strategy exhaustive)";
      throw InputError(path + ": --resume with a different search configuration (fields that differ: " +
                       fields + ")" + hint + "; rerun with the original options, or write to a new --out file");
    }
  }
  contents.config = config;
  if (rebuild) write_results_h5(path, contents);

  // The journal: rewritten from the contents when missing (an HDF5 file from
  // elsewhere), otherwise cut back to its last whole line.
  if (!have_journal || !journal_has_header) {
    const std::string tmp = journal_path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << nlohmann::json{{"kind", "header"}, {"format", kResultsFormat},
                            {"version", kResultsVersion}, {"config", config}}
                 .dump()
          << "\n";
      for (const auto& run : contents.runs) {
        out << nlohmann::json{{"kind", "run"}, {"run_id", run["run_id"]}, {"attributes", run["attributes"]}}
                   .dump()
            << "\n";
      }
      for (const auto& row : contents.rows) {
        nlohmann::json j = row.to_json();
        j["kind"] = "evaluation";
        out << j.dump() << "\n";
      }
      out.flush();
      if (!out) throw Error(tmp + ": cannot write the results journal (disk full?)");
    }
    int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    if (std::rename(tmp.c_str(), journal_path.c_str()) != 0) {
      throw Error(journal_path + ": cannot create the results journal");
    }
    fsync_dir_of(journal_path);
  } else if (::truncate(journal_path.c_str(), static_cast<off_t>(journal_valid)) != 0) {
    throw Error(journal_path + ": cannot cut the torn last line off the journal");
  }
  store.journal_fd_ = ::open(journal_path.c_str(), O_WRONLY | O_APPEND);
  if (store.journal_fd_ < 0) throw InputError(journal_path + ": cannot open the results journal for writing");
  store.file_ = H5File::open(path, true);
  store.rows_ = std::move(contents.rows);
  store.written_rows_ = store.rows_.size();
  store.written_prompt_rows_ = count_prompt_rows(store.rows_);
  store.last_flush_ = now_s();
  return store;
}

ResultStore::ResultStore(ResultStore&& o) noexcept
    : path_(std::move(o.path_)), config_(std::move(o.config_)), file_(std::move(o.file_)),
      journal_fd_(o.journal_fd_), rows_(std::move(o.rows_)), written_rows_(o.written_rows_),
      written_prompt_rows_(o.written_prompt_rows_), last_flush_(o.last_flush_),
      sync_interval_s_(o.sync_interval_s_), last_sync_(o.last_sync_), unsynced_(o.unsynced_) {
  o.journal_fd_ = -1;
}

ResultStore& ResultStore::operator=(ResultStore&& o) noexcept {
  if (this != &o) {
    if (journal_fd_ >= 0) ::close(journal_fd_);
    path_ = std::move(o.path_);
    config_ = std::move(o.config_);
    file_ = std::move(o.file_);
    journal_fd_ = o.journal_fd_;
    o.journal_fd_ = -1;
    rows_ = std::move(o.rows_);
    written_rows_ = o.written_rows_;
    written_prompt_rows_ = o.written_prompt_rows_;
    last_flush_ = o.last_flush_;
    sync_interval_s_ = o.sync_interval_s_;
    last_sync_ = o.last_sync_;
    unsynced_ = o.unsynced_;
  }
  return *this;
}

ResultStore::~ResultStore() {
  try {
    close();
  } catch (const std::exception& e) {
    log::error(std::string("closing the results file: ") + e.what());
  }
}

void ResultStore::journal_write(const nlohmann::json& record, bool defer_sync) {
  const std::string line = record.dump() + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(journal_fd_, line.data() + done, line.size() - done);
    if (n < 0) throw Error(journal_path() + ": cannot append to the results journal (disk full?)");
    done += static_cast<std::size_t>(n);
  }
  unsynced_ = true;
  if (!defer_sync) sync();
}

void ResultStore::sync() {
  if (journal_fd_ < 0 || !unsynced_) return;
  if (sync_interval_s_ <= 0 || now_s() - last_sync_ >= sync_interval_s_) {
    ::fdatasync(journal_fd_);
    last_sync_ = now_s();
    unsynced_ = false;
  }
}

void ResultStore::begin_run(const std::string& run_id, const nlohmann::json& attributes) {
  journal_write({{"kind", "run"}, {"run_id", run_id}, {"attributes", attributes}});
  write_run(file_, run_id, attributes);
  file_.flush();
}

void ResultStore::append(const EvaluationRow& row, bool defer_sync) {
  nlohmann::json j = row.to_json();
  j["kind"] = "evaluation";
  journal_write(j, defer_sync);
  rows_.push_back(row);
}

void ResultStore::flush() {
  if (journal_fd_ >= 0 && unsynced_) {
    ::fdatasync(journal_fd_);
    last_sync_ = now_s();
    unsynced_ = false;
  }
  if (!file_.is_open()) return;
  append_rows(file_, rows_, written_rows_, written_prompt_rows_);
  written_rows_ = rows_.size();
  file_.flush();
  last_flush_ = now_s();
}

void ResultStore::maybe_flush(std::size_t max_pending, double max_age_s) {
  if (rows_.size() - written_rows_ >= max_pending ||
      (rows_.size() > written_rows_ && now_s() - last_flush_ >= max_age_s)) {
    flush();
  }
}

void ResultStore::close() {
  if (file_.is_open()) {
    flush();
    file_.close();
  }
  if (journal_fd_ >= 0) {
    ::close(journal_fd_);
    journal_fd_ = -1;
  }
}

}  // namespace diffsearch::io
