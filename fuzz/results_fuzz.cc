// The results file as distill, merge and status read it. The first input
// byte picks the form:
//  - even: the rest is the journal (results.h5.journal), whose text wins
//    over the HDF5 file when both exist; libFuzzer mutates it as text.
//  - odd: the rest drives a structure-aware builder that writes an HDF5 file
//    through libhdf5's own API: the results layout of a real search (made in
//    LLVMFuzzerInitialize) with attributes, groups, tables, columns, column
//    types, dataspace ranks and cell values replaced, dropped or added.
//    Flipping raw bytes would mostly exercise libhdf5's own format parser,
//    which has findings of its own (docs/fuzzing.md); this keeps the
//    corruption in the parts our code interprets.
// Either the contents read are usable by distill, merge and status, or the
// reader refuses the file with an InputError naming it.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "coordinator/distill.h"
#include "coordinator/search.h"
#include "fuzz/fuzz_support.h"
#include "fuzz/search_seed.h"
#include "io/result_store.h"
#include "io/results_merge.h"

using namespace diffsearch;
namespace fs = std::filesystem;

namespace {

// What a real results file holds, as material for the builder.
io::ResultsContents valid;
std::vector<io::Row> valid_evaluations, valid_prompts;  // the tables' rows, as H5Table reads them
std::vector<std::string> string_pool;

coordinator::SearchOptions template_options(const std::string& out) {
  coordinator::SearchOptions o = fuzz::seed_search_options(out);
  o.speed_measure = "macs";
  return o;
}

hid_t vlen_string() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

class Builder {
 public:
  explicit Builder(FuzzedDataProvider& p) : p_(p) {}

  std::string text() {
    switch (p_.ConsumeIntegralInRange(0, 3)) {
      case 0: return p_.ConsumeRandomLengthString(64);
      default: return string_pool.empty() ? "" : string_pool[p_.ConsumeIntegralInRange<std::size_t>(0, string_pool.size() - 1)];
    }
  }

  // An attribute `name` on `obj`: the expected string, or absent, or of
  // another type or shape.
  void attribute(hid_t obj, const char* name, const std::string& good) {
    const int how = p_.ConsumeIntegralInRange(0, 9);
    if (how == 9) return;  // absent
    hsize_t n = 1;
    const bool array = how == 8;
    if (array) n = p_.ConsumeIntegralInRange<hsize_t>(0, 4);
    hid_t space = array ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_SCALAR);
    if (how <= 4 || array) {  // variable-length string(s)
      std::vector<std::string> values(n);
      for (auto& v : values) v = how <= 2 ? good : text();
      std::vector<const char*> ptrs;
      for (auto& v : values) ptrs.push_back(v.c_str());
      hid_t t = vlen_string();
      hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        if (n > 0) H5Awrite(a, t, ptrs.data());
        H5Aclose(a);
      }
      H5Tclose(t);
    } else if (how == 5) {  // fixed-length string
      const std::string v = p_.ConsumeBool() ? good : text();
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, v.size() + 1);
      hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        H5Awrite(a, t, v.c_str());
        H5Aclose(a);
      }
      H5Tclose(t);
    } else if (how == 6) {  // integer
      const int64_t v = p_.ConsumeIntegral<int64_t>();
      hid_t a = H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        H5Awrite(a, H5T_NATIVE_INT64, &v);
        H5Aclose(a);
      }
    } else {  // float
      const double v = p_.ConsumeFloatingPoint<double>();
      hid_t a = H5Acreate2(obj, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(a);
      }
    }
    H5Sclose(space);
  }

  // A table `name` holding `rows` of `schema`, with columns dropped, retyped
  // or added, the rank changed and cells replaced.
  void table(hid_t file, const char* name, const io::Schema& schema, const std::vector<io::Row>& rows) {
    const int how = p_.ConsumeIntegralInRange(0, 15);
    if (how == 15) return;  // absent
    if (how == 14) {        // a group where the table should be
      hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g >= 0) H5Gclose(g);
      return;
    }
    enum Kind { I64, F64, STR, I32, F32, FIXSTR };
    struct Member {
      std::string name;
      Kind kind;
      std::size_t column;  // in `schema`; npos for an added one
    };
    std::vector<Member> members;
    for (std::size_t c = 0; c < schema.size(); ++c) {
      Kind kind = schema[c].type == io::ColumnType::int64 ? I64 : schema[c].type == io::ColumnType::float64 ? F64 : STR;
      const int op = p_.ConsumeIntegralInRange(0, 31);
      if (op == 31) continue;                                  // dropped
      if (op == 30) kind = static_cast<Kind>(p_.ConsumeIntegralInRange(0, 5));  // retyped
      members.push_back({schema[c].name, kind, c});
    }
    if (p_.ConsumeIntegralInRange(0, 15) == 0) {
      members.push_back({p_.ConsumeRandomLengthString(16), static_cast<Kind>(p_.ConsumeIntegralInRange(0, 5)),
                         std::string::npos});
    }
    auto width = [](Kind k) -> std::size_t {
      switch (k) {
        case I64: case F64: return 8;
        case I32: case F32: return 4;
        case STR: return sizeof(char*);
        case FIXSTR: return 8;
      }
      return 8;
    };
    std::size_t row_bytes = 0;
    std::vector<std::size_t> offsets;
    for (const auto& m : members) {
      offsets.push_back(row_bytes);
      row_bytes += width(m.kind);
    }
    hid_t type = H5Tcreate(H5T_COMPOUND, std::max<std::size_t>(row_bytes, 1));
    std::vector<hid_t> owned;
    for (std::size_t i = 0; i < members.size(); ++i) {
      hid_t t;
      switch (members[i].kind) {
        case I64: t = H5Tcopy(H5T_NATIVE_INT64); break;
        case F64: t = H5Tcopy(H5T_NATIVE_DOUBLE); break;
        case I32: t = H5Tcopy(H5T_NATIVE_INT32); break;
        case F32: t = H5Tcopy(H5T_NATIVE_FLOAT); break;
        case STR: t = vlen_string(); break;
        case FIXSTR: t = H5Tcopy(H5T_C_S1); H5Tset_size(t, 8); break;
      }
      owned.push_back(t);
      H5Tinsert(type, members[i].name.c_str(), offsets[i], t);  // a duplicate name fails: left out
    }
    // Rows: the valid ones, some repeated, cells replaced.
    const std::size_t n = p_.ConsumeIntegralInRange<std::size_t>(0, 6);
    std::vector<unsigned char> buffer(std::max<std::size_t>(n * row_bytes, 1));
    std::vector<std::string> keep;  // the strings the buffer points at
    keep.reserve(n * members.size());
    for (std::size_t r = 0; r < n; ++r) {
      const io::Row* base = rows.empty() ? nullptr : &rows[p_.ConsumeIntegralInRange<std::size_t>(0, rows.size() - 1)];
      for (std::size_t i = 0; i < members.size(); ++i) {
        unsigned char* cell = buffer.data() + r * row_bytes + offsets[i];
        const bool replace = base == nullptr || members[i].column == std::string::npos || p_.ConsumeIntegralInRange(0, 7) == 0;
        const io::Value* v = replace ? nullptr : &(*base)[members[i].column];
        switch (members[i].kind) {
          case I64: case I32: {
            int64_t x = v && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : p_.ConsumeIntegral<int64_t>();
            if (members[i].kind == I64) {
              std::memcpy(cell, &x, 8);
            } else {
              const int32_t y = static_cast<int32_t>(x);
              std::memcpy(cell, &y, 4);
            }
            break;
          }
          case F64: case F32: {
            double x;
            if (v && std::holds_alternative<double>(*v)) {
              x = std::get<double>(*v);
            } else {
              switch (p_.ConsumeIntegralInRange(0, 4)) {
                case 0: x = std::numeric_limits<double>::quiet_NaN(); break;
                case 1: x = std::numeric_limits<double>::infinity() * (p_.ConsumeBool() ? 1 : -1); break;
                case 2: x = std::numeric_limits<double>::max() * (p_.ConsumeBool() ? 1 : -1); break;
                default: x = p_.ConsumeFloatingPoint<double>();
              }
            }
            if (members[i].kind == F64) {
              std::memcpy(cell, &x, 8);
            } else {
              const float y = static_cast<float>(std::isfinite(x) && std::fabs(x) < 1e38 ? x : 0.0);
              std::memcpy(cell, &y, 4);
            }
            break;
          }
          case STR: {
            const char* s = nullptr;  // a NULL string: what HDF5 reads for unwritten cells
            if (v && std::holds_alternative<std::string>(*v)) {
              keep.push_back(std::get<std::string>(*v));
              s = keep.back().c_str();
            } else if (p_.ConsumeIntegralInRange(0, 5) != 0) {
              keep.push_back(text());
              s = keep.back().c_str();
            }
            std::memcpy(cell, &s, sizeof(char*));
            break;
          }
          case FIXSTR: {
            const std::string s = text();
            std::memset(cell, 0, 8);
            std::memcpy(cell, s.data(), std::min<std::size_t>(8, s.size()));
            break;
          }
        }
      }
    }
    // Mostly one dimension; at times a scalar or two dimensions.
    const int rank_how = p_.ConsumeIntegralInRange(0, 15);
    hid_t space;
    hsize_t dims[2] = {n, 1};
    if (rank_how == 0) {
      space = H5Screate(H5S_SCALAR);
    } else if (rank_how == 1 && n > 0) {
      dims[0] = n == 1 ? 1 : 2;
      dims[1] = n / dims[0];
      space = H5Screate_simple(2, dims, nullptr);
    } else {
      space = H5Screate_simple(1, dims, nullptr);
    }
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) {
      if (n > 0 && H5Sget_simple_extent_npoints(space) <= static_cast<hssize_t>(n)) {
        H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data());
      }
      H5Dclose(ds);
    }
    H5Sclose(space);
    for (hid_t t : owned) H5Tclose(t);
    H5Tclose(type);
  }

  void runs(hid_t file) {
    const int how = p_.ConsumeIntegralInRange(0, 7);
    if (how == 7) return;
    if (how == 6) {  // a dataset where the group should be
      hsize_t one = 1;
      hid_t space = H5Screate_simple(1, &one, nullptr);
      hid_t ds = H5Dcreate2(file, "/runs", H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (ds >= 0) H5Dclose(ds);
      H5Sclose(space);
      return;
    }
    hid_t g = H5Gcreate2(file, "/runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return;
    const std::size_t n = p_.ConsumeIntegralInRange<std::size_t>(0, 3);
    for (std::size_t i = 0; i < n; ++i) {
      const nlohmann::json* run = valid.runs.empty() ? nullptr : &valid.runs[i % valid.runs.size()];
      std::string id = run && p_.ConsumeBool() ? (*run)["run_id"].get<std::string>() : p_.ConsumeRandomLengthString(12);
      if (id.empty() || id.find('/') != std::string::npos || id == "." ) id = "r" + std::to_string(i);
      if (p_.ConsumeIntegralInRange(0, 7) == 0) {  // a dataset, not a group
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t ds = H5Dcreate2(g, id.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (ds >= 0) {
          attribute(ds, "attributes", run ? (*run)["attributes"].dump() : "{}");
          H5Dclose(ds);
        }
        H5Sclose(space);
        continue;
      }
      hid_t r = H5Gcreate2(g, id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (r < 0) continue;
      attribute(r, "attributes", run ? (*run)["attributes"].dump() : "{}");
      H5Gclose(r);
    }
    H5Gclose(g);
  }

 private:
  FuzzedDataProvider& p_;
};

void build_h5(const std::string& path, FuzzedDataProvider& p) {
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) std::abort();
  Builder b(p);
  hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
  b.attribute(root, "format", io::kResultsFormat);
  b.attribute(root, "version", std::to_string(io::kResultsVersion));
  b.attribute(root, "config", valid.config.dump());
  H5Gclose(root);
  b.runs(file);
  b.table(file, "/evaluations", io::evaluations_schema(), valid_evaluations);
  b.table(file, "/prompt_scores", io::prompt_scores_schema(), valid_prompts);
  H5Fclose(file);
}

// What `diffsearch status` does with the contents (cli/cmd_status.cc).
void status_like(const io::ResultsContents& c) {
  std::set<std::string> units;
  for (const auto& r : c.rows) units.insert(r.unit_key + r.host + r.device + r.error);
  DIFFSEARCH_ASSERT(c.config.is_object());
  for (const auto& run : c.runs) {
    DIFFSEARCH_ASSERT(run.at("run_id").is_string());
    DIFFSEARCH_ASSERT(run.at("attributes").is_object());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const std::string dir = fuzz::scratch_dir() + "/template";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto options = template_options(dir + "/results.h5");
  if (coordinator::run_search_local(options) != 0) std::abort();
  // The HDF5 file, not the journal: read_results prefers the journal.
  fs::remove(options.out + ".journal");
  valid = io::read_results(options.out);
  DIFFSEARCH_ASSERT(!valid.rows.empty() && !valid.from_journal);
  {
    io::H5File file = io::H5File::open(options.out, false);
    valid_evaluations = io::H5Table(file, "/evaluations", io::evaluations_schema()).read_all();
    valid_prompts = io::H5Table(file, "/prompt_scores", io::prompt_scores_schema()).read_all();
  }
  std::set<std::string> strings;
  for (const auto& r : valid.rows) {
    for (const auto* s : {&r.unit_key, &r.space_key, &r.baseline_key, &r.model, &r.sampler, &r.methods, &r.setting,
                          &r.status, &r.device, &r.run_id}) {
      strings.insert(*s);
    }
  }
  strings.insert({"ok", "failed", "{}", "SD1.5", "SDXL", "not json", "{\"deepcache\":{\"cache_interval\":1e999}}",
                  "[1,2]", io::kResultsFormat, "1", "2", "{\"strategy\":\"frontier\"}", "{\"samples\":0}",
                  "{\"samples\":-1,\"strategy\":5}"});
  string_pool.assign(strings.begin(), strings.end());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string path = fuzz::scratch_dir() + "/results.h5";
  const std::string journal = path + ".journal";
  std::error_code ec;
  fs::remove(path, ec);
  fs::remove(journal, ec);
  if (data[0] % 2 == 0) {
    fuzz::write_file("results.h5.journal", data + 1, size - 1);
  } else {
    FuzzedDataProvider p(data + 1, size - 1);
    build_h5(path, p);
  }
  fuzz::expect_clean_refusal(
      [&] {
        const auto contents = io::read_results(path);
        status_like(contents);
        const auto answers = coordinator::distill(contents, fuzz::tasks());
        (void)coordinator::distill_text(answers);
        (void)io::merge_shards({{path, contents}}, "fuzz-merge", nlohmann::json::object(), true);
      },
      path);
  return 0;
}
