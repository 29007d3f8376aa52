#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "hax/engine/error.h"
#include "hax/io/npy.h"

namespace hax::io {
namespace {

using hax::testing::ScratchDir;

TEST(Npy, Float32RoundTripForEveryRank) {
  const ScratchDir dir;
  for (const std::vector<std::int64_t>& shape : {std::vector<std::int64_t>{}, {5}, {2, 3}, {2, 0, 3}, {1, 2, 1, 2}}) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> values(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = 0.5f * static_cast<float>(i) - 1.0f;
    save_npy(dir / "a.npy", values, shape);
    const NpyArray<float> got = load_npy<float>(dir / "a.npy");
    EXPECT_EQ(got.shape, shape);
    EXPECT_EQ(got.values, values);
    EXPECT_EQ(read_npy_header(dir / "a.npy").data_offset % 64, 0u);  // numpy's alignment
  }
}

TEST(Npy, Int32RoundTrip) {
  const ScratchDir dir;
  const std::vector<std::int32_t> values = {0, -1, 2147483647, -2147483647 - 1, 42, 7};
  save_npy(dir / "i.npy", values, {3, 2});
  const NpyArray<std::int32_t> got = load_npy<std::int32_t>(dir / "i.npy");
  EXPECT_EQ(got.shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(got.values, values);
}

TEST(Npy, HeaderIsWhatNumpyWrites) {
  const ScratchDir dir;
  save_npy(dir / "h.npy", std::vector<float>(6), {2, 3});
  const std::string bytes = hax::testing::read_file(dir / "h.npy");
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(bytes.substr(10, 59), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  EXPECT_EQ(bytes.substr(69, 58), std::string(58, ' '));  // padded so that the data starts at byte 128
  EXPECT_EQ(bytes[127], '\n');
  EXPECT_EQ(bytes.size(), 128u + 24u);
  save_npy(dir / "v.npy", std::vector<std::int32_t>(5), {5});
  EXPECT_NE(hax::testing::read_file(dir / "v.npy").find("'shape': (5,)"), std::string::npos);
}

TEST(Npy, WrongDtypeOrValueCountIsAnError) {
  const ScratchDir dir;
  save_npy(dir / "i.npy", std::vector<std::int32_t>{1, 2}, {2});
  EXPECT_THROW(load_npy<float>(dir / "i.npy"), Error);
  EXPECT_THROW(save_npy(dir / "x.npy", std::vector<float>{1, 2, 3}, {2, 2}), Error);
}

// A version 1.0 file from a header dict and data bytes.
std::string npy_bytes(const std::string& dict, const std::string& data, std::string magic = "\x93NUMPY\x01") {
  std::string header = dict + "\n";
  const std::uint16_t length = static_cast<std::uint16_t>(header.size());
  return magic + std::string(1, '\0') + std::string{static_cast<char>(length & 0xff), static_cast<char>(length >> 8)} +
         header + data;
}

TEST(Npy, RejectsMalformedFilesNamingFileAndProblem) {
  const ScratchDir dir;
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string eight(8, '\0');
  const struct {
    std::string bytes, expected;
  } cases[] = {
      {"PK\x03\x04 not numpy at all", "magic"},
      {npy_bytes(good, eight, "\x93NUMPY\x04"), "unsupported format version 4.0"},
      {npy_bytes(good, "1234"), "truncated"},
      {npy_bytes(good, eight + "x"), "needs 8 bytes of data, the file has 9"},
      {npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", eight), "dtype '>f4'"},
      {npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", eight), "dtype '<f8'"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", eight), "Fortran"},
      {npy_bytes("{'descr': '<f4', 'shape': (2,), }", eight), "malformed header"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,-1), }", eight), "malformed header"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", eight), "malformed header"},
      {std::string("\x93NUMPY\x01\x00\xff\x00{'descr'", 17), "header length 255 runs past the end of the file"},
      {std::string("\x93NUMPY\x01", 7), "file ends inside the magic string"},
      // Found by fuzz/targets/npy.cpp: a header that claims 4 GiB was allocated before the file was measured; a
      // shape whose element count wraps around 2^64 (here to 0) matched an empty data section; and a huge shape in
      // a short file allocated its whole array before the size check.
      {std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff{", 13), "header length 4294967295 runs past the end"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", ""),
       "more elements than any memory"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }", eight),
       "needs 4000000000000 bytes of data, the file has 8 (truncated?)"},
  };
  for (const auto& c : cases) {
    const auto path = dir / "bad.npy";
    hax::testing::write_file(path, c.bytes);
    try {
      load_npy<float>(path);
      ADD_FAILURE() << "no error for " << c.expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace hax::io
