// Appendable HDF5 tables: a chunked, unlimited, one-dimensional dataset of a
// compound type whose columns are int64, float64 or variable-length UTF-8
// strings, so h5py and pandas read it with no diffsearch code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace diffsearch::io {

enum class ColumnType { int64, float64, string };

using Value = std::variant<int64_t, double, std::string>;  // alternatives in ColumnType's order

struct Column {
  std::string name;
  ColumnType type;
  // Set for a column added to a format after files were written without it:
  // reading such a file fills this value in (of the column's type). Unset,
  // the column is required and a file without it is refused.
  std::optional<Value> default_when_absent = std::nullopt;
};

using Row = std::vector<Value>;  // one value a column, in schema order

using Schema = std::vector<Column>;

// An open HDF5 file (RAII over hid_t, kept as int64_t so this header does not
// pull in hdf5.h).
class H5File {
 public:
  // Creates (truncating) or opens read-write / read-only. File-locking
  // failures (network file systems) become an InputError that says to set
  // HDF5_USE_FILE_LOCKING=FALSE; a file that is not HDF5 one naming the path.
  static H5File create(const std::string& path);
  static H5File open(const std::string& path, bool writable);
  H5File() = default;
  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  ~H5File();

  int64_t id() const { return id_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return id_ >= 0; }
  void flush();
  void close();

  bool has(const std::string& object_path) const;
  // String attributes on the root or on a group (created as needed).
  void set_attribute(const std::string& object_path, const std::string& name, const std::string& value);
  void set_attribute(const std::string& object_path, const std::string& name, int64_t value);
  std::string string_attribute(const std::string& object_path, const std::string& name) const;
  bool has_attribute(const std::string& object_path, const std::string& name) const;
  void create_group(const std::string& group_path);
  std::vector<std::string> list_group(const std::string& group_path) const;

 private:
  int64_t id_ = -1;
  std::string path_;
};

class H5Table {
 public:
  // Creates the dataset `name` with `schema` (chunked, unlimited).
  static void create(H5File& file, const std::string& name, const Schema& schema);
  // Opens an existing table. Columns are matched by name; InputError, naming
  // the file and the column, when the file lacks a required column, has one
  // `schema` does not know (another tool's file, or another format version)
  // or holds a column in another type. Optional columns the file lacks
  // read as their default.
  H5Table(H5File& file, const std::string& name, const Schema& schema);
  ~H5Table();
  H5Table(const H5Table&) = delete;
  H5Table& operator=(const H5Table&) = delete;

  uint64_t size() const;
  // Error when the file lacks optional columns: an older file cannot hold
  // the values; rewrite it with the full schema first.
  void append(const std::vector<Row>& rows);
  // Rows with every column of the schema, defaults where the file lacks one.
  std::vector<Row> read_all() const;

  // Whether the file holds the column (false for an optional one it lacks).
  bool has_column(const std::string& column) const;
  // The optional columns the file lacks, in schema order.
  std::vector<std::string> absent_columns() const;

 private:
  H5File* file_;
  std::string name_;
  Schema schema_;
  std::vector<bool> in_file_;  // per schema column
  int64_t dataset_ = -1;
  int64_t memory_type_ = -1;  // the columns in the file, at offsets_
  std::vector<std::size_t> offsets_;
  std::size_t row_bytes_ = 0;
};

}  // namespace diffsearch::io
