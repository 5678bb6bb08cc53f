// The failure taxonomy: exceptions by type and foreign (libtorch) messages by
// text, the names the results file stores, and the error_kind column through
// the journal and the HDF5 file, with legacy kinds for older journal lines.
#include "io/failure.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <new>
#include <stdexcept>

#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace diffsearch {
namespace {

namespace fs = std::filesystem;

TEST(FailureTest, ExceptionsKeepTheirKind) {
  EXPECT_EQ(classify_failure(InputError("models.json: no folder")), FailureKind::bad_input);
  EXPECT_EQ(classify_failure(OutOfMemoryError("tried to allocate")), FailureKind::out_of_memory);
  EXPECT_EQ(classify_failure(DeviceFaultError("lost")), FailureKind::device_fault);
  EXPECT_EQ(classify_failure(ClassifiedError(FailureKind::bad_input, "from a child")), FailureKind::bad_input);
  EXPECT_EQ(classify_failure(std::bad_alloc()), FailureKind::out_of_memory);
  EXPECT_EQ(classify_failure(std::runtime_error("NaN or infinity in the measurement")), FailureKind::transient);
  // A type beats the text: an input error that mentions memory is still bad input.
  EXPECT_EQ(classify_failure(InputError("--batch-size: out of memory at 4096")), FailureKind::bad_input);
}

TEST(FailureTest, LibtorchMessagesByText) {
  EXPECT_EQ(failure_kind_of_message("CUDA out of memory. Tried to allocate 2.00 GiB"), FailureKind::out_of_memory);
  EXPECT_EQ(failure_kind_of_message("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"), FailureKind::out_of_memory);
  EXPECT_EQ(failure_kind_of_message("CUDA error: an illegal memory access was encountered"), FailureKind::device_fault);
  EXPECT_EQ(failure_kind_of_message("CUDA error: device-side assert triggered"), FailureKind::device_fault);
  EXPECT_EQ(failure_kind_of_message("CUDA error: unspecified launch failure"), FailureKind::device_fault);
  EXPECT_EQ(failure_kind_of_message("shape mismatch"), FailureKind::transient);
}

TEST(FailureTest, NamesRoundTrip) {
  for (FailureKind k : {FailureKind::none, FailureKind::bad_input, FailureKind::out_of_memory,
                        FailureKind::device_fault, FailureKind::transient}) {
    EXPECT_EQ(parse_failure_kind(failure_kind_name(k)), k) << failure_kind_name(k);
  }
  EXPECT_EQ(parse_failure_kind("a kind of a later version"), FailureKind::transient);
  EXPECT_EQ(legacy_failure_kind("ok", ""), "");
  EXPECT_EQ(legacy_failure_kind("failed", "CUDA out of memory"), "out_of_memory");
  EXPECT_EQ(legacy_failure_kind("failed", "injected failure"), "transient");
}

TEST(FailureTest, ErrorKindColumnRoundTripsAndOldLinesGetLegacyKinds) {
  const fs::path dir = testing::fresh_test_dir("failure_test");
  const std::string path = (dir / "r.h5").string();
  auto row = [](const std::string& status, const std::string& error, const std::string& kind) {
    io::EvaluationRow r;
    r.unit_key = "u/" + kind;
    r.status = status;
    r.error = error;
    r.error_kind = kind;
    return r;
  };
  {
    auto store = io::ResultStore::open(path, {{"samples", 1}}, false);
    store.append(row("ok", "", ""));
    store.append(row("failed", "no such unit", "bad_input"));
    store.append(row("failed", "worker child died: killed by signal 9 (SIGKILL)", "device_fault"));
    store.close();
  }
  auto check = [](const std::vector<io::EvaluationRow>& rows, const std::string& from) {
    ASSERT_EQ(rows.size(), 3u) << from;
    EXPECT_EQ(rows[0].error_kind, "") << from;
    EXPECT_EQ(rows[1].error_kind, "bad_input") << from;
    EXPECT_EQ(rows[2].error_kind, "device_fault") << from;
  };
  check(io::read_results(path).rows, "journal");
  fs::remove(path + ".journal");
  check(io::read_results(path).rows, "HDF5");

  // A journal line of an earlier version: no error_kind key.
  nlohmann::json old = row("failed", "CUDA out of memory (rank 1)", "").to_json();
  old.erase("error_kind");
  EXPECT_EQ(io::EvaluationRow::from_json(old).error_kind, "out_of_memory");
  old["error"] = "boom";
  EXPECT_EQ(io::EvaluationRow::from_json(old).error_kind, "transient");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace diffsearch
