// HDF5 tables: append and read back, schema checks, bad files, and that
// h5py and pandas read what we write with no diffsearch code.
#include "io/hdf5_table.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/error.h"

namespace fs = std::filesystem;
using namespace diffsearch::io;
using diffsearch::InputError;

namespace {
const Schema kSchema = {{"key", ColumnType::string}, {"steps", ColumnType::int64},
                        {"speedup", ColumnType::float64}};

fs::path temp_path(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("diffsearch_h5_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}
}  // namespace

TEST(Hdf5Table, AppendsAndReadsBackAcrossReopen) {
  const fs::path path = temp_path("table.h5");
  {
    H5File file = H5File::create(path.string());
    H5Table::create(file, "/evaluations", kSchema);
    H5Table table(file, "/evaluations", kSchema);
    table.append({{std::string("sd15/ddim"), int64_t{50}, 2.5}});
    table.append({{std::string("naïve — 東京"), int64_t{20}, 1.25}, {std::string(""), int64_t{0}, -1.0}});
    file.set_attribute("/", "format", "diffsearch-results");
    file.create_group("/runs/abc");
    file.set_attribute("/runs/abc", "command_line", "diffsearch search");
    file.flush();
  }
  H5File file = H5File::open(path.string(), false);
  H5Table table(file, "/evaluations", kSchema);
  ASSERT_EQ(table.size(), 3u);
  auto rows = table.read_all();
  EXPECT_EQ(std::get<std::string>(rows[1][0]), "naïve — 東京");
  EXPECT_EQ(std::get<int64_t>(rows[0][1]), 50);
  EXPECT_DOUBLE_EQ(std::get<double>(rows[2][2]), -1.0);
  EXPECT_EQ(file.string_attribute("/", "format"), "diffsearch-results");
  EXPECT_EQ(file.list_group("/runs"), std::vector<std::string>{"abc"});
  EXPECT_EQ(file.string_attribute("/runs/abc", "command_line"), "diffsearch search");
}

TEST(Hdf5Table, OtherColumnsAreRefused) {
  const fs::path path = temp_path("other.h5");
  {
    H5File file = H5File::create(path.string());
    H5Table::create(file, "/evaluations", {{"x", ColumnType::float64}});
  }
  H5File file = H5File::open(path.string(), false);
  EXPECT_THROW(H5Table(file, "/evaluations", kSchema), InputError);
  EXPECT_THROW(H5Table(file, "/missing", kSchema), InputError);
}

TEST(Hdf5Table, NonHdf5AndMissingFilesAreClearErrors) {
  const fs::path path = temp_path("garbage.h5");
  std::ofstream(path) << "this is not hdf5";
  try {
    H5File::open(path.string(), false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos);
  }
  EXPECT_THROW(H5File::open(temp_path("absent.h5").string(), false), InputError);
}

TEST(Hdf5Table, PandasReadsTheTable) {
  const fs::path path = temp_path("pandas.h5");
  {
    H5File file = H5File::create(path.string());
    H5Table::create(file, "/evaluations", kSchema);
    H5Table table(file, "/evaluations", kSchema);
    table.append({{std::string("a/b"), int64_t{25}, 3.5}, {std::string("c"), int64_t{50}, 1.5}});
  }
  const std::string cmd =
      "/usr/bin/python3 -c \"import h5py, pandas; f = h5py.File('" + path.string() +
      "', 'r'); df = pandas.DataFrame(f['evaluations'][:]); "
      "assert list(df.columns) == ['key', 'steps', 'speedup'], df.columns; "
      "assert df['steps'].sum() == 75; assert df['key'][0] in (b'a/b', 'a/b'); print('ok')\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}
