// safetensors files: a memory-mapped, fully validated reader and a writer.
// Torch-free: tensors are raw byte views; worker/engine turns them into tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace diffsearch::io {

enum class DType { F64, F32, F16, BF16, I64, I32, U8, BOOL };

std::size_t dtype_size(DType dtype);
// The safetensors spelling: "F64", "F32", "F16", "BF16", "I64", "I32", "U8", "BOOL".
const char* dtype_name(DType dtype);

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const std::uint8_t* data;  // inside the mapping; valid while the file lives
  std::size_t nbytes;

  int64_t numel() const;
};

// An open safetensors file. Opening validates everything a reader relies on:
// header length, JSON, dtypes, shapes against byte ranges, offsets inside the
// data section and not overlapping. Any violation is an InputError naming the
// file and the tensor.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const;
  // Throws InputError naming the file when the tensor is absent.
  const TensorView& tensor(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: bytes in little-endian order, row-major.
struct TensorData {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::uint8_t> bytes;
};

// Writes atomically (temporary file, then rename), tensors sorted by name.
void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace diffsearch::io
