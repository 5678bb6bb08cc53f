// safetensors reading (mmap + validation) and writing.
// Format: u64 little-endian header length N, N bytes of JSON, then the data.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace diffsearch::io {
namespace {

// Headers beyond this are not plausible safetensors files (the format caps
// them at 100 MB too) and would otherwise make us parse garbage for long.
constexpr std::uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

DType parse_dtype(const std::string& path, const std::string& tensor, const std::string& text) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F64", DType::F64}, {"F32", DType::F32},   {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32},   {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (const auto& [name, dtype] : kNames) {
    if (text == name) return dtype;
  }
  throw InputError(path + ": tensor '" + tensor + "' has dtype '" + text +
                   "'; supported are F64, F32, F16, BF16, I64, I32, U8, BOOL (convert the "
                   "file, for example with safetensors' save_file after .float())");
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw InputError(path + ": not a valid safetensors file: " + what +
                   " (the file may be truncated or damaged; re-download or re-save it)");
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::U8: case DType::BOOL: return 1;
  }
  DIFFSEARCH_ASSERT(false);
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  DIFFSEARCH_ASSERT(false);
  return "";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw InputError(path + ": cannot open safetensors file: " + std::strerror(errno) +
                     " (check the path)");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path + ": not a regular file (expected a .safetensors file)");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    corrupt(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) {
    throw InputError(path + ": cannot memory-map: " + std::strerror(errno));
  }
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = mapping;
  file->mapping_size_ = size;

  const auto* bytes = static_cast<const std::uint8_t*>(mapping);
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8) {
    corrupt(path, "header length " + std::to_string(header_len) + " is larger than the " +
                      std::to_string(size - 8) + " bytes after it");
  }
  if (header_len > kMaxHeaderBytes) corrupt(path, "header length " + std::to_string(header_len) + " exceeds 100 MB");
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_len);
  } catch (const nlohmann::json::exception& e) {
    corrupt(path, std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) corrupt(path, "header is not a JSON object");

  const std::uint8_t* data = bytes + 8 + header_len;
  const std::uint64_t data_size = size - 8 - header_len;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) corrupt(path, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) corrupt(path, "__metadata__['" + k + "'] is not a string");
        file->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets") || !entry["dtype"].is_string() ||
        !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      corrupt(path, "tensor '" + name + "' lacks dtype, shape or a two-element data_offsets");
    }
    TensorView view;
    view.name = name;
    view.dtype = parse_dtype(path, name, entry["dtype"].get<std::string>());
    std::uint64_t count = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) corrupt(path, "tensor '" + name + "' has a negative or non-integer dimension");
      const auto dim = d.get<std::uint64_t>();
      if (dim != 0 && count > std::numeric_limits<std::uint64_t>::max() / 16 / dim) {
        corrupt(path, "tensor '" + name + "' has an absurd shape");
      }
      count *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      corrupt(path, "tensor '" + name + "' has non-integer data_offsets");
    }
    const auto begin = offsets[0].get<std::uint64_t>();
    const auto end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_size) {
      corrupt(path, "tensor '" + name + "' spans bytes [" + std::to_string(begin) + ", " +
                        std::to_string(end) + ") but the data section has " +
                        std::to_string(data_size) + " bytes");
    }
    const std::uint64_t expected = count * dtype_size(view.dtype);
    if (end - begin != expected) {
      corrupt(path, "tensor '" + name + "' has " + std::to_string(end - begin) +
                        " bytes but its shape and dtype need " + std::to_string(expected));
    }
    view.data = data + begin;
    view.nbytes = end - begin;
    ranges.emplace_back(begin, end);
    file->tensors_.emplace(name, std::move(view));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) corrupt(path, "two tensors' byte ranges overlap");
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

bool SafetensorsFile::contains(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    throw InputError(path_ + ": no tensor named '" + name + "' (the file has " +
                     std::to_string(tensors_.size()) + " tensors; is it the right file?)");
  }
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) out.push_back(name);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorData*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorData* a, const TensorData* b) { return a->name < b->name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const TensorData* t : sorted) {
    std::uint64_t count = 1;
    for (int64_t d : t->shape) count *= static_cast<std::uint64_t>(d);
    DIFFSEARCH_ASSERT(count * dtype_size(t->dtype) == t->bytes.size());
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->bytes.size()}}};
    offset += t->bytes.size();
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data starts 8-byte aligned.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(path + ": cannot write (check the folder exists and is writable)");
    std::uint64_t n = text.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorData* t : sorted) {
      out.write(reinterpret_cast<const char*>(t->bytes.data()),
                static_cast<std::streamsize>(t->bytes.size()));
    }
    if (!out) throw InputError(path + ": write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw InputError(path + ": cannot move the finished file into place: " + std::strerror(errno));
  }
}

}  // namespace diffsearch::io
