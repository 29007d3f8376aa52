// NumPy .npy files of float32 or int32 in C order, any shape (what `hax logits` and the test oracles exchange with
// numpy). We write format version 1.0 with the header padded to a multiple of 64 bytes, as numpy.save does, and read
// versions 1.0 to 3.0. Anything else (another dtype, Fortran order, a bad header, a short file) is a hax::Error that
// names the file and the problem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace hax::io {

void save_npy(const std::filesystem::path& path, std::span<const float> values, const std::vector<std::int64_t>& shape);
void save_npy(const std::filesystem::path& path, std::span<const std::int32_t> values,
              const std::vector<std::int64_t>& shape);

struct NpyHeader {
  std::string descr;                // "<f4", "<i4", ...
  std::vector<std::int64_t> shape;  // () for a scalar
  std::uint64_t data_offset = 0;    // where the values start in the file
};
NpyHeader read_npy_header(const std::filesystem::path& path);

template <class T>
struct NpyArray {
  std::vector<std::int64_t> shape;
  std::vector<T> values;  // row-major
};
// T is float (the file must hold <f4) or std::int32_t (<i4).
template <class T>
NpyArray<T> load_npy(const std::filesystem::path& path);

}  // namespace hax::io
