// HDF5 C API behind H5File and H5Table: every call checked, errors turned
// into InputErrors that name the file, HDF5's own error printing silenced.
#include "io/hdf5_table.h"

#include <hdf5.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "io/error.h"
#include "io/utf8.h"

namespace diffsearch::io {
namespace {

constexpr hsize_t kChunkRows = 1024;

struct ErrorSilencer {
  ErrorSilencer() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
void silence_hdf5_errors() { static ErrorSilencer silencer; }

// HDF5's error stack as one line (innermost description), for messages.
std::string hdf5_error_text() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (e->desc && *e->desc) {
          if (!out->empty()) *out += "; ";
          *out += e->desc;
        }
        return n >= 3 ? 1 : 0;
      },
      &text);
  return text;
}

bool looks_like_hdf5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in && std::memcmp(sig, "\x89HDF\r\n\x1a\n", 8) == 0;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  const std::string detail = hdf5_error_text();
  throw InputError(path + ": " + what + (detail.empty() ? "" : " (HDF5: " + detail + ")"));
}

hid_t file_access_list() {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  // Keep old readers (h5py on HDF5 1.10) able to read what we write.
  H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST);
  return fapl;
}

hid_t string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

std::string locking_hint(const std::string& detail) {
  if (detail.find("lock") == std::string::npos) return "";
  return "; the file system refuses HDF5's file locks (common on NFS/Lustre): set "
         "HDF5_USE_FILE_LOCKING=FALSE in the environment, or write the file to a local disk";
}

}  // namespace

H5File H5File::create(const std::string& path) {
  silence_hdf5_errors();
  hid_t fapl = file_access_list();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (id < 0) {
    const std::string detail = hdf5_error_text();
    throw InputError(path + ": cannot create HDF5 file (check the folder exists and is writable" +
                     locking_hint(detail) + ")");
  }
  H5File f;
  f.id_ = id;
  f.path_ = path;
  return f;
}

H5File H5File::open(const std::string& path, bool writable) {
  silence_hdf5_errors();
  {
    std::ifstream probe(path);
    if (!probe) throw InputError(path + ": file not found or unreadable");
  }
  if (!looks_like_hdf5(path)) {
    throw InputError(path + ": not an HDF5 file (expected a results file written by diffsearch search)");
  }
  hid_t fapl = file_access_list();
  hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (id < 0) {
    const std::string detail = hdf5_error_text();
    throw InputError(path + ": cannot open HDF5 file" +
                     (detail.empty() ? std::string() : " (HDF5: " + detail + ")") +
                     (locking_hint(detail).empty()
                          ? "; it may be damaged or open for writing by another process"
                          : locking_hint(detail)));
  }
  H5File f;
  f.id_ = id;
  f.path_ = path;
  return f;
}

H5File::H5File(H5File&& other) noexcept : id_(other.id_), path_(std::move(other.path_)) {
  other.id_ = -1;
}

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    close();
    id_ = other.id_;
    path_ = std::move(other.path_);
    other.id_ = -1;
  }
  return *this;
}

H5File::~H5File() { close(); }

void H5File::flush() {
  if (id_ >= 0 && H5Fflush(id_, H5F_SCOPE_GLOBAL) < 0) fail(path_, "flush failed (disk full?)");
}

void H5File::close() {
  if (id_ >= 0) {
    H5Fclose(id_);
    id_ = -1;
  }
}

bool H5File::has(const std::string& object_path) const {
  // Check each component so a missing parent is not an error.
  std::string partial;
  std::size_t start = 1;
  while (start <= object_path.size()) {
    std::size_t end = object_path.find('/', start);
    if (end == std::string::npos) end = object_path.size();
    partial = object_path.substr(0, end);
    if (H5Lexists(id_, partial.c_str(), H5P_DEFAULT) <= 0) return false;
    start = end + 1;
  }
  return true;
}

void H5File::create_group(const std::string& group_path) {
  if (has(group_path)) return;
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = H5Gcreate2(id_, group_path.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (g < 0) fail(path_, "cannot create group " + group_path);
  H5Gclose(g);
}

std::vector<std::string> H5File::list_group(const std::string& group_path) const {
  std::vector<std::string> names;
  if (!has(group_path)) return names;
  H5Literate_by_name(
      id_, group_path.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names, H5P_DEFAULT);
  for (const auto& name : names) {
    if (!is_utf8(name)) {
      throw InputError(path_ + ": group " + group_path + " holds an object whose name is not UTF-8 text; " +
                       "diffsearch writes UTF-8 only, so the file is damaged or from another tool");
    }
  }
  return names;
}

namespace {
hid_t open_object(hid_t file, const std::string& object_path, const std::string& path) {
  hid_t obj = H5Oopen(file, object_path.c_str(), H5P_DEFAULT);
  if (obj < 0) fail(path, "no object " + object_path);
  return obj;
}
}  // namespace

void H5File::set_attribute(const std::string& object_path, const std::string& name,
                           const std::string& value) {
  hid_t obj = open_object(id_, object_path, path_);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  hid_t type = string_type();
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  const char* data = value.c_str();
  herr_t status = attr >= 0 ? H5Awrite(attr, type, &data) : -1;
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  H5Oclose(obj);
  if (status < 0) fail(path_, "cannot write attribute " + name + " on " + object_path);
}

void H5File::set_attribute(const std::string& object_path, const std::string& name, int64_t value) {
  hid_t obj = open_object(id_, object_path, path_);
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t status = attr >= 0 ? H5Awrite(attr, H5T_NATIVE_INT64, &value) : -1;
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  H5Oclose(obj);
  if (status < 0) fail(path_, "cannot write attribute " + name + " on " + object_path);
}

bool H5File::has_attribute(const std::string& object_path, const std::string& name) const {
  if (object_path != "/" && !has(object_path)) return false;
  return H5Aexists_by_name(id_, object_path.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

std::string H5File::string_attribute(const std::string& object_path, const std::string& name) const {
  if (!has_attribute(object_path, name)) {
    throw InputError(path_ + ": attribute '" + name + "' missing on " + object_path);
  }
  hid_t attr = H5Aopen_by_name(id_, object_path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  if (attr < 0) fail(path_, "cannot read attribute '" + name + "' on " + object_path);
  // One value is read into one slot below; an array attribute would overrun it.
  hid_t space = H5Aget_space(attr);
  const hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  if (space >= 0) H5Sclose(space);
  if (points != 1) {
    H5Aclose(attr);
    throw InputError(path_ + ": attribute '" + name + "' on " + object_path + " holds " + std::to_string(points) +
                     " values where diffsearch writes one (a file from another tool, or damaged)");
  }
  hid_t file_type = H5Aget_type(attr);
  std::string out;
  if (H5Tget_class(file_type) == H5T_STRING) {
    if (H5Tis_variable_str(file_type) > 0) {
      hid_t type = string_type();
      char* data = nullptr;
      if (H5Aread(attr, type, &data) >= 0 && data) {
        out = data;
        H5free_memory(data);
      }
      H5Tclose(type);
    } else {
      std::vector<char> buf(H5Tget_size(file_type) + 1, '\0');
      hid_t type = H5Tcopy(file_type);
      if (H5Aread(attr, type, buf.data()) >= 0) out = std::string(buf.data());
      H5Tclose(type);
    }
  } else if (H5Tget_class(file_type) == H5T_INTEGER) {
    int64_t v = 0;
    H5Aread(attr, H5T_NATIVE_INT64, &v);
    out = std::to_string(v);
  }
  H5Tclose(file_type);
  H5Aclose(attr);
  // Everything diffsearch writes is UTF-8; other bytes would escape later
  // from a JSON dump of the text, far from the file that held them.
  if (const std::size_t bad = invalid_utf8_at(out); bad != std::string::npos) {
    throw InputError(path_ + ": attribute '" + name + "' on " + object_path + " is not UTF-8 text (byte " +
                     std::to_string(bad + 1) + "); diffsearch writes UTF-8 only, so the file is damaged or " +
                     "from another tool: rerun the search or merge that wrote it");
  }
  return out;
}

namespace {

// The compound type of the columns marked in `in_file`, each at its offset in
// a row laid out for the whole schema (columns left out leave a gap there).
hid_t make_memory_type(const Schema& schema, const std::vector<bool>& in_file,
                       std::vector<std::size_t>& offsets, std::size_t& bytes) {
  offsets.clear();
  bytes = 0;
  for (const auto& c : schema) {
    offsets.push_back(bytes);
    bytes += c.type == ColumnType::string ? sizeof(char*) : 8;
  }
  hid_t type = H5Tcreate(H5T_COMPOUND, bytes);
  for (std::size_t i = 0; i < schema.size(); ++i) {
    if (!in_file[i]) continue;
    const auto& c = schema[i];
    if (c.type == ColumnType::string) {
      hid_t s = string_type();
      H5Tinsert(type, c.name.c_str(), offsets[i], s);
      H5Tclose(s);
    } else {
      H5Tinsert(type, c.name.c_str(), offsets[i],
                c.type == ColumnType::int64 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
    }
  }
  return type;
}

const char* type_name(ColumnType type) {
  switch (type) {
    case ColumnType::int64: return "integers";
    case ColumnType::float64: return "floats";
    case ColumnType::string: return "variable-length strings";
  }
  return "?";
}

// What a member of a file's compound holds, in type_name's words.
std::string file_type_name(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return "integers";
    case H5T_FLOAT: return "floats";
    case H5T_STRING: return H5Tis_variable_str(type) > 0 ? "variable-length strings" : "fixed-length strings";
    default: return "another HDF5 type";
  }
}

// HDF5 converts any integer or float width on read; strings it converts only
// between variable-length ones.
bool holds(hid_t type, ColumnType column) {
  switch (column) {
    case ColumnType::int64: return H5Tget_class(type) == H5T_INTEGER;
    case ColumnType::float64: return H5Tget_class(type) == H5T_FLOAT;
    case ColumnType::string: return H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0;
  }
  return false;
}

// Matches the members of a file's compound to `schema` by name, marking in
// `in_file` the columns the file holds. Returns why the table cannot be read
// as `schema`, or "" when it can.
std::string match_columns(hid_t file_type, const Schema& schema, std::vector<bool>& in_file) {
  const std::string other_file = " (a file from another tool or another format version)";
  if (H5Tget_class(file_type) != H5T_COMPOUND) return "is not a table of named columns" + other_file;
  const int members = H5Tget_nmembers(file_type);
  for (int m = 0; m < members; ++m) {
    char* raw = H5Tget_member_name(file_type, static_cast<unsigned>(m));
    const std::string member = raw ? raw : "";
    if (raw) H5free_memory(raw);
    std::size_t i = 0;
    while (i < schema.size() && schema[i].name != member) ++i;
    if (i == schema.size()) {
      return "has a column '" + member + "' this version of diffsearch does not write" + other_file;
    }
    hid_t member_type = H5Tget_member_type(file_type, static_cast<unsigned>(m));
    const bool ok = holds(member_type, schema[i].type);
    const std::string found = file_type_name(member_type);
    H5Tclose(member_type);
    if (!ok) {
      return "column '" + member + "' holds " + found + " where diffsearch writes " +
             type_name(schema[i].type) + other_file;
    }
    in_file[i] = true;
  }
  for (std::size_t i = 0; i < schema.size(); ++i) {
    if (!in_file[i] && !schema[i].default_when_absent) {
      return "has no column '" + schema[i].name + "'" + other_file;
    }
  }
  return "";
}

}  // namespace

void H5Table::create(H5File& file, const std::string& name, const Schema& schema) {
  std::vector<std::size_t> offsets;
  std::size_t bytes = 0;
  hid_t type = make_memory_type(schema, std::vector<bool>(schema.size(), true), offsets, bytes);
  hsize_t dims[1] = {0};
  hsize_t maxdims[1] = {H5S_UNLIMITED};
  hid_t space = H5Screate_simple(1, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk[1] = {kChunkRows};
  H5Pset_chunk(dcpl, 1, chunk);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t ds = H5Dcreate2(file.id(), name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
  if (ds < 0) fail(file.path(), "cannot create table " + name);
  H5Dclose(ds);
}

H5Table::H5Table(H5File& file, const std::string& name, const Schema& schema)
    : file_(&file), name_(name), schema_(schema), in_file_(schema.size(), false) {
  for (const auto& c : schema_) {
    DIFFSEARCH_ASSERT(!c.default_when_absent || c.default_when_absent->index() == static_cast<std::size_t>(c.type));
  }
  if (!file.has(name)) {
    throw InputError(file.path() + ": no table '" + name + "' (not a diffsearch results file?)");
  }
  dataset_ = H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT);
  if (dataset_ < 0) fail(file.path(), "cannot open table " + name);
  // size() and read_all() read one dimension of rows: a scalar or a 2-D
  // dataset would overrun their buffers.
  hid_t space = H5Dget_space(dataset_);
  const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (space >= 0) H5Sclose(space);
  if (rank != 1) {
    H5Dclose(dataset_);
    dataset_ = -1;
    throw InputError(file.path() + ": table '" + name + "' has " + std::to_string(rank) +
                     " dimensions where diffsearch writes one (a file from another tool, or damaged)");
  }
  hid_t file_type = H5Dget_type(dataset_);
  const std::string problem = match_columns(file_type, schema_, in_file_);
  H5Tclose(file_type);
  if (!problem.empty()) {
    H5Dclose(dataset_);
    dataset_ = -1;
    throw InputError(file.path() + ": table '" + name + "' " + problem);
  }
  // Only the file's columns (HDF5 matches compound members by name); the
  // slots of absent ones stay unread and read_all fills their defaults.
  memory_type_ = make_memory_type(schema_, in_file_, offsets_, row_bytes_);
}

bool H5Table::has_column(const std::string& column) const {
  for (std::size_t i = 0; i < schema_.size(); ++i) {
    if (schema_[i].name == column) return in_file_[i];
  }
  return false;
}

std::vector<std::string> H5Table::absent_columns() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < schema_.size(); ++i) {
    if (!in_file_[i]) names.push_back(schema_[i].name);
  }
  return names;
}

H5Table::~H5Table() {
  if (memory_type_ >= 0) H5Tclose(memory_type_);
  if (dataset_ >= 0) H5Dclose(dataset_);
}

uint64_t H5Table::size() const {
  hid_t space = H5Dget_space(dataset_);
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space, dims, nullptr);
  H5Sclose(space);
  return dims[0];
}

void H5Table::append(const std::vector<Row>& rows) {
  if (rows.empty()) return;
  if (const auto absent = absent_columns(); !absent.empty()) {
    std::string names;
    for (const auto& n : absent) names += (names.empty() ? "" : ", ") + n;
    throw Error(file_->path() + ": table '" + name_ + "' was written without the columns " + names +
                " (an earlier format); rewrite the file with the full schema before appending");
  }
  std::vector<unsigned char> buffer(rows.size() * row_bytes_);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    DIFFSEARCH_ASSERT(rows[r].size() == schema_.size());
    unsigned char* base = buffer.data() + r * row_bytes_;
    for (std::size_t c = 0; c < schema_.size(); ++c) {
      unsigned char* p = base + offsets_[c];
      switch (schema_[c].type) {
        case ColumnType::int64: {
          int64_t v = std::get<int64_t>(rows[r][c]);
          std::memcpy(p, &v, 8);
          break;
        }
        case ColumnType::float64: {
          double v = std::get<double>(rows[r][c]);
          std::memcpy(p, &v, 8);
          break;
        }
        case ColumnType::string: {
          const char* s = std::get<std::string>(rows[r][c]).c_str();
          std::memcpy(p, &s, sizeof(char*));
          break;
        }
      }
    }
  }
  const hsize_t old_size = size();
  hsize_t new_size[1] = {old_size + rows.size()};
  if (H5Dset_extent(dataset_, new_size) < 0) fail(file_->path(), "cannot extend table " + name_);
  hid_t file_space = H5Dget_space(dataset_);
  hsize_t start[1] = {old_size};
  hsize_t count[1] = {rows.size()};
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mem_space = H5Screate_simple(1, count, nullptr);
  herr_t status = H5Dwrite(dataset_, memory_type_, mem_space, file_space, H5P_DEFAULT, buffer.data());
  H5Sclose(mem_space);
  H5Sclose(file_space);
  if (status < 0) fail(file_->path(), "cannot write to table " + name_ + " (disk full?)");
}

std::vector<Row> H5Table::read_all() const {
  const hsize_t n = size();
  std::vector<Row> rows;
  if (n == 0) return rows;
  std::vector<unsigned char> buffer(n * row_bytes_);
  hid_t space = H5Dget_space(dataset_);
  if (H5Dread(dataset_, memory_type_, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
    H5Sclose(space);
    fail(file_->path(), "cannot read table " + name_ + " (the file may be damaged)");
  }
  rows.reserve(n);
  std::string not_utf8;  // the first cell that is not, thrown once the buffer is reclaimed
  for (hsize_t r = 0; r < n; ++r) {
    const unsigned char* base = buffer.data() + r * row_bytes_;
    Row row;
    row.reserve(schema_.size());
    for (std::size_t c = 0; c < schema_.size(); ++c) {
      if (!in_file_[c]) {
        row.push_back(*schema_[c].default_when_absent);
        continue;
      }
      const unsigned char* p = base + offsets_[c];
      switch (schema_[c].type) {
        case ColumnType::int64: {
          int64_t v;
          std::memcpy(&v, p, 8);
          row.emplace_back(v);
          break;
        }
        case ColumnType::float64: {
          double v;
          std::memcpy(&v, p, 8);
          row.emplace_back(v);
          break;
        }
        case ColumnType::string: {
          const char* s;
          std::memcpy(&s, p, sizeof(char*));
          row.emplace_back(std::string(s ? s : ""));
          const auto& text = std::get<std::string>(row.back());
          if (const std::size_t bad = invalid_utf8_at(text); bad != std::string::npos && not_utf8.empty()) {
            not_utf8 = "row " + std::to_string(r) + ", column '" + schema_[c].name + "' (byte " +
                       std::to_string(bad + 1) + ")";
          }
          break;
        }
      }
    }
    rows.push_back(std::move(row));
  }
  H5Dvlen_reclaim(memory_type_, space, H5P_DEFAULT, buffer.data());
  H5Sclose(space);
  if (!not_utf8.empty()) {
    throw InputError(file_->path() + ": table '" + name_ + "', " + not_utf8 +
                     ", is not UTF-8 text; diffsearch writes UTF-8 only, so the file is damaged or from " +
                     "another tool: rerun the search or merge that wrote it");
  }
  return rows;
}

}  // namespace diffsearch::io
