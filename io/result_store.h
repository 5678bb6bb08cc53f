// The search's results file: results.h5 (/evaluations, /prompt_scores, /runs)
// and its append-only journal results.h5.journal, the source of truth while a
// search runs, from which the HDF5 file is rebuilt after a kill at any instant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/hdf5_table.h"

namespace diffsearch::io {

constexpr const char* kResultsFormat = "diffsearch-results";
// Columns added since (prompt_begin, prompt_end, gpu_seconds, error_kind) are additive:
// files without them still read, with defaults, so the version stays 1. Bump
// it only for a change that older readers would misread.
constexpr int64_t kResultsVersion = 1;

// One prompt's scores in one evaluation (a /prompt_scores row; `row` there is
// the evaluation's row in /evaluations).
struct PromptScore {
  int64_t prompt_index = 0;  // in the search's prompt list, not in the row's range
  double clip_base = 0;
  double clip_acc = 0;
  double psnr = 0;
  double ssim = 0;
};

// One row of /evaluations: one attempt at one measurement unit. Numbers that
// a failed attempt did not measure are NaN (null in the journal).
struct EvaluationRow {
  std::string unit_key;
  std::string space_key;
  std::string baseline_key;
  std::string model;    // "SD1.5"
  std::string sampler;  // "DDIM"
  int64_t steps = 0;
  int64_t resolution = 0;
  std::string methods;  // "deepcache+tome", "" for a baseline unit
  std::string setting;  // setting_key JSON text
  std::string status;   // "ok" or "failed"
  std::string error;
  // A failed row's kind (io/failure.h): "bad_input", "out_of_memory",
  // "device_fault" or "transient"; "" for an ok row. Rows of older files:
  // legacy_failure_kind (out of memory by the error's text, else transient).
  std::string error_kind;
  int64_t attempt = 1;
  int64_t num_samples = 0;  // the search's prompt count, whatever range the row measured
  int64_t batch_size = 0;
  int64_t seed = 0;
  // The prompts measured: [prompt_begin, prompt_end) of the search's prompt
  // list. A frontier search measures a setting on nested prefixes in several
  // rows; a full measurement (and every row of older files) is [0, num_samples).
  int64_t prompt_begin = 0;
  int64_t prompt_end = 0;
  double time_base_s = 0;
  double time_acc_s = 0;
  double speedup = 0;
  double speedup_macs = 0;
  double clip_base = 0;
  double clip_acc = 0;
  double score_loss = 0;
  double psnr = 0;
  double ssim = 0;
  int64_t macs_base = 0;
  int64_t macs_acc = 0;
  int64_t peak_bytes = 0;
  std::string device;
  std::string host;
  int64_t rank = 0;
  double started_at = 0;  // seconds since the Unix epoch
  double finished_at = 0;
  // What the attempt cost: the worker's wall time for the evaluation, or an
  // evaluator's simulated seconds. Older files: finished_at - started_at
  // (NaN when either is unknown or they are out of order).
  double gpu_seconds = 0;
  std::string run_id;
  std::vector<PromptScore> prompts;

  nlohmann::json to_json() const;
  static EvaluationRow from_json(const nlohmann::json& j);
};

const Schema& evaluations_schema();
const Schema& prompt_scores_schema();

// What a results file holds, read back.
struct ResultsContents {
  nlohmann::json config;                  // the search configuration
  std::vector<nlohmann::json> runs;       // {"run_id": ..., "attributes": {...}}
  std::vector<EvaluationRow> rows;        // in row order
  bool from_journal = false;
  std::string path;  // the file read (read_results), for messages about its contents
};

// Reads a results file: the journal when it exists (it is never behind the
// HDF5 file, and readable while a search writes), else the HDF5 file.
// InputError for a file that is not HDF5 or is another tool's HDF5.
ResultsContents read_results(const std::string& path);

// Fields of two configurations that differ ("samples", "seed", ...), sorted.
std::vector<std::string> config_differences(const nlohmann::json& a, const nlohmann::json& b);

// The writer a search uses. Every append goes to the journal first (one JSON
// line, fsync'd), then to HDF5 in batches.
class ResultStore {
 public:
  // A new file (InputError if `path` or its journal exists and !resume), or,
  // with resume, the existing one: its journal is replayed (a torn last line
  // dropped), the HDF5 file rebuilt from it when damaged or behind, and the
  // configuration checked against `config` (InputError naming the fields
  // that differ).
  static ResultStore open(const std::string& path, const nlohmann::json& config, bool resume);

  ResultStore(ResultStore&&) noexcept;
  ResultStore& operator=(ResultStore&&) noexcept;
  ~ResultStore();

  // Records a run's attributes (command line, hosts, devices, versions,
  // started_at) under /runs/<run_id>.
  void begin_run(const std::string& run_id, const nlohmann::json& attributes);
  // The row goes to the journal at once (write()); the journal is synced
  // now, or, with `defer_sync`, at the next sync(): a group commit, one
  // fdatasync for the rows of several workers, before any of them is told
  // its result is safe.
  void append(const EvaluationRow& row, bool defer_sync = false);
  // fdatasync the journal if rows are pending and the sync interval allows.
  void sync();
  // Writes buffered rows to HDF5 and flushes it.
  void flush();
  // flush() when `max_pending` rows or `max_age_s` seconds have accumulated.
  void maybe_flush(std::size_t max_pending = 256, double max_age_s = 2.0);
  void close();

  // fdatasync the journal at most every `seconds` (0, the default: after
  // every record). Records are write()n at once either way, so a killed
  // process loses nothing; only an OS crash or power loss can lose the
  // last interval.
  void set_sync_interval(double seconds) { sync_interval_s_ = seconds; }

  const std::vector<EvaluationRow>& rows() const { return rows_; }
  const std::string& path() const { return path_; }
  std::string journal_path() const { return path_ + ".journal"; }

 private:
  ResultStore() = default;
  void journal_write(const nlohmann::json& record, bool defer_sync = false);

  std::string path_;
  nlohmann::json config_;
  H5File file_;
  int journal_fd_ = -1;
  std::vector<EvaluationRow> rows_;
  std::size_t written_rows_ = 0;  // rows already in the HDF5 file
  int64_t written_prompt_rows_ = 0;
  double last_flush_ = 0;
  double sync_interval_s_ = 0;
  double last_sync_ = 0;
  bool unsynced_ = false;
};

// Rebuilds `path` (HDF5) from the journal's contents, atomically (a temporary
// file renamed over it).
void write_results_h5(const std::string& path, const ResultsContents& contents);

}  // namespace diffsearch::io
