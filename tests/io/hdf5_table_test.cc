// HDF5 tables: append and read back, schema checks, bad files, and that
// h5py and pandas read what we write with no diffsearch code.
#include "io/hdf5_table.h"

#include <gtest/gtest.h>
#include <hdf5.h>

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

// InputError's message, or "" when `open` throws none.
template <typename Open>
std::string input_error(Open open) {
  try {
    open();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Hdf5Table, ColumnsAreMatchedByNameWithClearErrors) {
  const fs::path path = temp_path("columns.h5");
  {
    H5File file = H5File::create(path.string());
    // kSchema's columns in another order: still kSchema's table.
    H5Table::create(file, "/reordered", {{"speedup", ColumnType::float64}, {"key", ColumnType::string},
                                         {"steps", ColumnType::int64}});
    H5Table(file, "/reordered", {{"speedup", ColumnType::float64}, {"key", ColumnType::string},
                                 {"steps", ColumnType::int64}})
        .append({{2.5, std::string("k"), int64_t{20}}});
    H5Table::create(file, "/wrong_type", {{"key", ColumnType::string}, {"steps", ColumnType::float64},
                                          {"speedup", ColumnType::float64}});
    H5Table::create(file, "/extra", {{"key", ColumnType::string}, {"steps", ColumnType::int64},
                                     {"speedup", ColumnType::float64}, {"color", ColumnType::string}});
    H5Table::create(file, "/missing_required", {{"key", ColumnType::string}, {"speedup", ColumnType::float64}});
  }
  H5File file = H5File::open(path.string(), false);
  H5Table reordered(file, "/reordered", kSchema);
  const auto rows = reordered.read_all();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(rows[0][0]), "k");
  EXPECT_EQ(std::get<int64_t>(rows[0][1]), 20);
  EXPECT_EQ(std::get<double>(rows[0][2]), 2.5);

  std::string m = input_error([&] { H5Table(file, "/wrong_type", kSchema); });
  EXPECT_NE(m.find(path.string()), std::string::npos) << m;
  EXPECT_NE(m.find("column 'steps' holds floats where diffsearch writes integers"), std::string::npos) << m;
  m = input_error([&] { H5Table(file, "/extra", kSchema); });
  EXPECT_NE(m.find("has a column 'color'"), std::string::npos) << m;
  m = input_error([&] { H5Table(file, "/missing_required", kSchema); });
  EXPECT_NE(m.find("has no column 'steps'"), std::string::npos) << m;
}

// A column added to a format later: files written before it read with the
// column's default, and are refused appends (they could not hold it).
TEST(Hdf5Table, OptionalColumnsAnOlderFileLacksReadAsTheirDefault) {
  const fs::path path = temp_path("older.h5");
  {
    H5File file = H5File::create(path.string());
    H5Table::create(file, "/evaluations", kSchema);
    H5Table(file, "/evaluations", kSchema)
        .append({{std::string("a"), int64_t{20}, 1.5}, {std::string("b"), int64_t{50}, 2.5}});
  }
  const Schema newer = {{"key", ColumnType::string},
                        {"begin", ColumnType::int64, int64_t{-1}},
                        {"steps", ColumnType::int64},
                        {"note", ColumnType::string, std::string("n/a")},
                        {"speedup", ColumnType::float64},
                        {"seconds", ColumnType::float64, 0.5}};
  {
    H5File file = H5File::open(path.string(), true);
    H5Table table(file, "/evaluations", newer);
    EXPECT_TRUE(table.has_column("steps"));
    EXPECT_FALSE(table.has_column("begin"));
    EXPECT_EQ(table.absent_columns(), (std::vector<std::string>{"begin", "note", "seconds"}));
    const auto rows = table.read_all();
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[1], (Row{std::string("b"), int64_t{-1}, int64_t{50}, std::string("n/a"), 2.5, 0.5}));
    EXPECT_THROW(table.append({rows[0]}), diffsearch::Error);
    EXPECT_EQ(table.size(), 2u);
  }
  {
    // Written with every column, the optional ones hold what was written.
    H5File file = H5File::create(path.string());
    H5Table::create(file, "/evaluations", newer);
    H5Table table(file, "/evaluations", newer);
    EXPECT_TRUE(table.absent_columns().empty());
    table.append({{std::string("c"), int64_t{4}, int64_t{25}, std::string("x"), 3.5, 9.0}});
    EXPECT_EQ(table.read_all()[0], (Row{std::string("c"), int64_t{4}, int64_t{25}, std::string("x"), 3.5, 9.0}));
  }
  // An optional column is still checked when present.
  H5File file = H5File::open(path.string(), false);
  const Schema note_as_int = {{"key", ColumnType::string},  {"begin", ColumnType::int64, int64_t{-1}},
                              {"steps", ColumnType::int64}, {"note", ColumnType::int64, int64_t{0}},
                              {"speedup", ColumnType::float64}, {"seconds", ColumnType::float64, 0.5}};
  const std::string m = input_error([&] { H5Table(file, "/evaluations", note_as_int); });
  EXPECT_NE(m.find("column 'note' holds variable-length strings where diffsearch writes integers"),
            std::string::npos)
      << m;
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

// Found by fuzz/results_fuzz.cc: a table of two dimensions, or an attribute
// holding several values, overran the one-dimensional buffers they were
// read into. Both are now refused, naming the file and the object.
TEST(Hdf5Table, TablesOfOtherRanksAndArrayAttributesAreRefused) {
  const fs::path path = temp_path("ranks.h5");
  {
    H5File file = H5File::create(path.string());
    hid_t type = H5Tcreate(H5T_COMPOUND, 8);
    H5Tinsert(type, "steps", 0, H5T_NATIVE_INT64);
    hsize_t dims[2] = {2, 3};
    hid_t space = H5Screate_simple(2, dims, nullptr);
    hid_t ds = H5Dcreate2(file.id(), "/grid", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const int64_t values[6] = {1, 2, 3, 4, 5, 6};
    H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    H5Dclose(ds);
    H5Sclose(space);
    hid_t scalar = H5Screate(H5S_SCALAR);
    ds = H5Dcreate2(file.id(), "/scalar", type, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(scalar);
    H5Tclose(type);
    hsize_t n = 4;
    hid_t list = H5Screate_simple(1, &n, nullptr);
    hid_t attr = H5Acreate2(file.id(), "version", H5T_NATIVE_INT64, list, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_INT64, values);
    H5Aclose(attr);
    H5Sclose(list);
  }
  H5File file = H5File::open(path.string(), false);
  const Schema schema = {{"steps", ColumnType::int64}};
  for (const char* name : {"/grid", "/scalar"}) {
    try {
      H5Table table(file, name, schema);
      FAIL() << name << " was accepted";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path.string() + ": table '" + name + "' has"), std::string::npos) << what;
      EXPECT_NE(what.find("dimensions where diffsearch writes one"), std::string::npos) << what;
    }
  }
  try {
    file.string_attribute("/", "version");
    FAIL() << "an attribute of 4 values was read as one";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("attribute 'version' on / holds 4 values"), std::string::npos) << e.what();
  }
}

// Everything diffsearch writes is UTF-8; other bytes in a cell, an attribute
// or a group's member name are refused where they are read, naming the place,
// instead of escaping later from a JSON dump (fuzzing finding 9).
TEST(Hdf5Table, TextThatIsNotUtf8IsRefusedNamingThePlace) {
  const fs::path path = temp_path("not-utf8.h5");
  const std::string bad = std::string("SD1") + static_cast<char>(0xCE) + "5";
  {
    H5File file = H5File::create(path.string());
    H5Table::create(file, "/evaluations", kSchema);
    H5Table table(file, "/evaluations", kSchema);
    table.append({{std::string("fine"), int64_t{1}, 1.0}, {bad, int64_t{2}, 2.0}});
    file.set_attribute("/", "model", bad);
    file.create_group("/runs/" + bad);
  }
  H5File file = H5File::open(path.string(), false);
  H5Table table(file, "/evaluations", kSchema);
  try {
    table.read_all();
    FAIL() << "a cell that is not UTF-8 was read";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path.string() + ": table '/evaluations', row 1, column 'key' (byte 4)"), std::string::npos)
        << what;
    EXPECT_NE(what.find("not UTF-8"), std::string::npos) << what;
  }
  try {
    file.string_attribute("/", "model");
    FAIL() << "an attribute that is not UTF-8 was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("attribute 'model' on / is not UTF-8 text (byte 4)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(file.list_group("/runs"), InputError);
}
