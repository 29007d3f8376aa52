// safetensors files (the Hugging Face checkpoint format), read and written by our own code:
//   8 bytes: N, the header length, little-endian u64
//   N bytes: a JSON object {name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {string: string}}   (optional metadata), padded with spaces
//   the data buffer: every tensor row-major and little-endian at [begin, end) relative to the buffer's start;
//   together the ranges cover the buffer exactly, without gaps or overlaps.
// We write F32 only. We read F32, and F16 / BF16 converted to float (PyTorch's bf16 checkpoints); other dtypes of
// the format are accepted in the header but cannot be read as floats. Anything malformed is a hax::Error that names
// the file and the problem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hax/engine/params.h"

namespace hax::io {

using SafetensorsMetadata = std::map<std::string, std::string>;

// Our writer pads the header so that the data buffer starts at a multiple of this many bytes: the alignment a mapped
// parameter buffer needs (load_params_mapped).
inline constexpr std::size_t kDataAlignBytes = AlignedBuffer::kAlignBytes;

// A tensor to write, without copying its values.
struct TensorView {
  std::string name;
  std::vector<std::int64_t> shape;
  std::span<const float> values;  // shape_numel(shape) floats, row-major
};

// A tensor read into memory.
struct TensorData {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

// Writes the tensors as F32, in the given order, through a temp file renamed into place.
void save_safetensors(const std::filesystem::path& path, std::span<const TensorView> tensors,
                      const SafetensorsMetadata& metadata = {});
void save_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                      const SafetensorsMetadata& metadata = {});

// An open safetensors file: the header is read and checked on opening, the values when asked for (one stream: not
// for reading from several threads at once).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<std::string>& names() const { return names_; }  // in the order of their data
  bool contains(const std::string& name) const { return entries_.contains(name); }
  const std::vector<std::int64_t>& shape(const std::string& name) const;
  const std::string& dtype(const std::string& name) const;  // "F32", "BF16", ...
  std::size_t numel(const std::string& name) const;
  const SafetensorsMetadata& metadata() const { return metadata_; }
  std::uint64_t data_start() const { return data_start_; }  // file offset of the data buffer
  // Byte range [begin, end) of `name` in the data buffer.
  std::pair<std::uint64_t, std::uint64_t> data_range(const std::string& name) const;

  // The values of `name` as floats; `out` must hold exactly numel(name) of them.
  void read(const std::string& name, std::span<float> out) const;
  TensorData read(const std::string& name) const;
  std::vector<TensorData> read_all() const;

 private:
  struct Entry {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::size_t numel = 0;
    std::uint64_t begin = 0, end = 0;  // byte range in the data buffer
  };
  const Entry& entry(const std::string& name) const;
  void parse_entries(const nlohmann::json& header, std::uint64_t data_size);
  Entry parse_entry(const std::string& name, const nlohmann::json& value, std::uint64_t data_size) const;
  void check_coverage(std::uint64_t data_size);

  std::filesystem::path path_;
  std::uint64_t data_start_ = 0;  // file offset of the data buffer
  std::vector<std::string> names_;
  std::unordered_map<std::string, Entry> entries_;
  SafetensorsMetadata metadata_;
  mutable std::ifstream in_;
};

// The tensors of a parameter layout inside a flat buffer with that layout (store.params(), store.grads(), or an
// optimizer moment of the same size), named prefix + tensor name.
std::vector<TensorView> layout_views(const ParamStore& layout, std::span<const float> flat,
                                     const std::string& prefix = "");

// Fills `flat` (laid out as `layout`) from the tensors prefix + name of `file`. Every tensor must be there with the
// layout's shape; errors name the tensor. Tensors of the file outside the layout are left alone.
void read_layout(const SafetensorsFile& file, const ParamStore& layout, std::span<float> flat,
                 const std::string& prefix = "");

// All parameters of a store, by their names and shapes.
void save_params(const std::filesystem::path& path, const ParamStore& store, const SafetensorsMetadata& metadata = {});
// Loads every parameter of the store; a missing tensor, a wrong shape or a tensor the store does not have is an error.
void load_params(const std::filesystem::path& path, ParamStore& store);
// The same over several stores in one file (a model's parameters and its buffers): every tensor of the file must
// belong to one of them.
void save_params(const std::filesystem::path& path, std::initializer_list<const ParamStore*> stores,
                 const SafetensorsMetadata& metadata = {});
void load_params(const std::filesystem::path& path, std::initializer_list<ParamStore*> stores);
// The same, but where the file holds each store's flat buffer as it is (our own F32 files, with no padding in the
// layouts), the stores' parameter buffers are replaced by a copy-on-write mapping of the file: nothing is copied. So
// nothing may point into the stores' old buffers (Model loads this way before it binds its layers).
void load_params_mapped(const std::filesystem::path& path, std::initializer_list<ParamStore*> stores);

}  // namespace hax::io
