#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "../support/expect_error.h"
#include "../support/test_support.h"
#include "hax/engine/error.h"
#include "hax/engine/params.h"
#include "hax/engine/rng.h"
#include "hax/io/safetensors.h"

namespace hax::io {
namespace {

using hax::testing::ScratchDir;

std::vector<float> iota_values(std::size_t n, float start) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + 0.25f * static_cast<float>(i);
  return v;
}

TEST(Safetensors, RoundTripKeepsNamesShapesValuesAndMetadata) {
  const ScratchDir dir;
  const std::vector<TensorData> tensors = {
      {"layers.0.mixer.in_proj.weight", {2, 3}, iota_values(6, -1.0f)},
      {"scalar", {}, {3.5f}},
      {"empty", {0, 4}, {}},
      {"norm_f.weight", {5}, {1.0f, -0.0f, std::numeric_limits<float>::infinity(), 1e-40f, -7.0f}},
      {"cube", {1, 1, 3}, iota_values(3, 10.0f)},
  };
  const SafetensorsMetadata metadata = {{"format", "pt"}, {"step", "12"}};
  save_safetensors(dir / "m.safetensors", tensors, metadata);

  const SafetensorsFile file(dir / "m.safetensors");
  EXPECT_EQ(file.metadata(), metadata);
  ASSERT_EQ(file.names().size(), tensors.size());
  for (const TensorData& want : tensors) {
    SCOPED_TRACE(want.name);
    ASSERT_TRUE(file.contains(want.name));
    EXPECT_EQ(file.dtype(want.name), "F32");
    const TensorData got = file.read(want.name);
    EXPECT_EQ(got.shape, want.shape);
    ASSERT_EQ(got.values.size(), want.values.size());
    for (std::size_t i = 0; i < want.values.size(); ++i)  // bit for bit: -0 and the denormal too
      EXPECT_EQ(std::bit_cast<std::uint32_t>(got.values[i]), std::bit_cast<std::uint32_t>(want.values[i]));
  }
  // The data buffer starts 64-byte aligned (the reference writer aligns to 8), so a mapping can use it in place.
  const std::string bytes = hax::testing::read_file(dir / "m.safetensors");
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ((8 + header_size) % kDataAlignBytes, 0u);
}

TEST(Safetensors, NamesComeInTheOrderOfTheirData) {
  const ScratchDir dir;
  save_safetensors(dir / "o.safetensors", std::vector<TensorData>{{"b", {1}, {1}}, {"a", {2}, {2, 3}}, {"c", {}, {4}}});
  EXPECT_EQ(SafetensorsFile(dir / "o.safetensors").names(), (std::vector<std::string>{"b", "a", "c"}));
}

TEST(Safetensors, WriterRejectsDuplicateNamesAndWrongValueCountsAndLeavesNoFile) {
  const ScratchDir dir;
  EXPECT_THROW(save_safetensors(dir / "d.safetensors", std::vector<TensorData>{{"a", {1}, {1}}, {"a", {1}, {2}}}),
               Error);
  EXPECT_THROW(save_safetensors(dir / "d.safetensors", std::vector<TensorData>{{"a", {2, 2}, {1, 2, 3}}}), Error);
  EXPECT_THROW(save_safetensors(dir / "d.safetensors", std::vector<TensorData>{{"__metadata__", {1}, {1}}}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "d.safetensors"));
}

TEST(Safetensors, ReadChecksTheDestinationSize) {
  const ScratchDir dir;
  save_safetensors(dir / "s.safetensors", std::vector<TensorData>{{"a", {2, 2}, {1, 2, 3, 4}}});
  const SafetensorsFile file(dir / "s.safetensors");
  std::vector<float> small(3);
  EXPECT_THROW(file.read("a", small), Error);
  EXPECT_THROW(file.read("missing"), Error);
}

// ---- parameter stores ----

ParamStore small_model() {
  ParamStore store;
  store.add("embeddings.weight", {10, 4});
  store.add("layers.0.mixer.A_log", {3, 2});
  store.add("layers.0.mixer.D", {3});
  store.add("norm_f.weight", {4});
  store.allocate();
  return store;
}

TEST(SafetensorsParams, SaveThenLoadRestoresEveryParameter) {
  const ScratchDir dir;
  ParamStore saved = small_model();
  Rng(5).fill_normal(saved.params(), 0.0f, 1.0f);
  save_params(dir / "model.safetensors", saved, {{"format", "pt"}});

  ParamStore loaded = small_model();
  load_params(dir / "model.safetensors", loaded);
  for (const TensorInfo& t : saved.tensors()) {
    const auto a = saved.param(t.name), b = loaded.param(t.name);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << t.name;
  }
  const SafetensorsFile file(dir / "model.safetensors");
  EXPECT_EQ(file.shape("embeddings.weight"), (std::vector<std::int64_t>{10, 4}));
  EXPECT_EQ(file.names().size(), 4u);
}

using testing::expect_error_naming;

TEST(SafetensorsParams, LoadNamesTheMissingMisshapenOrUnexpectedTensor) {
  const ScratchDir dir;
  ParamStore store = small_model();
  std::vector<TensorView> views = layout_views(store, store.params());

  auto without_D = views;
  without_D.erase(without_D.begin() + 2);
  save_safetensors(dir / "missing.safetensors", without_D);
  expect_error_naming([&] { load_params(dir / "missing.safetensors", store); },
                        {"missing.safetensors", "missing tensor 'layers.0.mixer.D'"});

  auto transposed = views;
  transposed[1].shape = {2, 3};
  save_safetensors(dir / "shape.safetensors", transposed);
  expect_error_naming([&] { load_params(dir / "shape.safetensors", store); },
                        {"'layers.0.mixer.A_log' has shape (2, 3), expected (3, 2)"});

  auto extra = views;
  const std::vector<float> one = {1.0f};
  extra.push_back({"layers.0.mixer.E", {1}, one});
  save_safetensors(dir / "extra.safetensors", extra);
  expect_error_naming([&] { load_params(dir / "extra.safetensors", store); },
                        {"'layers.0.mixer.E' is not a parameter"});

  ParamStore unallocated;
  unallocated.add("a", {1});
  EXPECT_THROW(load_params(dir / "extra.safetensors", unallocated), Error);
}

// An optimizer's moments share the parameters' layout: several flat buffers in one file, told apart by a prefix.
TEST(SafetensorsParams, FlatBuffersWithTheStoreLayoutRoundTripUnderAPrefix) {
  const ScratchDir dir;
  const ParamStore store = small_model();
  std::vector<float> m(store.params().size()), v(store.params().size());
  Rng(6).fill_normal(m, 0.0f, 1.0f);
  Rng(7).fill_normal(v, 0.0f, 1.0f);
  std::vector<TensorView> views = layout_views(store, m, "exp_avg.");
  for (TensorView& view : layout_views(store, v, "exp_avg_sq.")) views.push_back(view);
  save_safetensors(dir / "optimizer.safetensors", views);

  const SafetensorsFile file(dir / "optimizer.safetensors");
  EXPECT_TRUE(file.contains("exp_avg_sq.layers.0.mixer.D"));
  std::vector<float> m2(m.size()), v2(v.size());
  read_layout(file, store, m2, "exp_avg.");
  read_layout(file, store, v2, "exp_avg_sq.");
  for (const TensorInfo& t : store.tensors()) {
    EXPECT_TRUE(std::equal(m.begin() + t.offset, m.begin() + t.offset + t.numel, m2.begin() + t.offset));
    EXPECT_TRUE(std::equal(v.begin() + t.offset, v.begin() + t.offset + t.numel, v2.begin() + t.offset));
  }
  std::vector<float> too_small(3);
  EXPECT_THROW(read_layout(file, store, too_small, "exp_avg."), Error);
}

// ---- reading other writers' files ----

// A safetensors file from a header text and data bytes; header_size overrides the real length when given.
std::string file_bytes(const std::string& header, const std::string& data, std::uint64_t header_size = UINT64_MAX) {
  if (header_size == UINT64_MAX) header_size = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &header_size, 8);
  return bytes + header + data;
}

std::string u16_bytes(std::initializer_list<std::uint16_t> values) {
  std::string bytes;
  for (std::uint16_t v : values) bytes += {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
  return bytes;
}

TEST(Safetensors, ReadsBf16AndF16AsFloat) {
  const ScratchDir dir;
  const std::string header = R"({"b":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},)"
                             R"("h":{"dtype":"F16","shape":[2,3],"data_offsets":[8,20]}})";
  const std::string data =
      u16_bytes({0x3f80, 0xc000, 0x7f80, 0x3e20}) + u16_bytes({0x3c00, 0x0001, 0x7bff, 0xfc00, 0x8000, 0x3555});
  hax::testing::write_file(dir / "half.safetensors", file_bytes(header, data));
  const SafetensorsFile file(dir / "half.safetensors");
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(file.read("b").values, (std::vector<float>{1.0f, -2.0f, inf, 0.15625f}));
  const TensorData h = file.read("h");
  EXPECT_EQ(h.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(h.values[0], 1.0f);
  EXPECT_EQ(h.values[1], 0x1p-24f);  // the smallest subnormal half
  EXPECT_EQ(h.values[2], 65504.0f);
  EXPECT_EQ(h.values[3], -inf);
  EXPECT_TRUE(std::signbit(h.values[4]) && h.values[4] == 0.0f);
  EXPECT_EQ(h.values[5], 0.333251953125f);
}

struct MalformedCase {
  const char* what;
  std::string bytes;
  std::string expected;  // part of the error message
};

std::vector<MalformedCase> malformed_cases() {
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\1');
  auto one = [](const std::string& entry) { return R"({"a":)" + entry + "}"; };
  return {
      {"shorter than the length field", "abc", "too short"},
      {"header length past the end", file_bytes(ok_header, eight, 10'000), "header length 10000 larger than the file"},
      {"invalid JSON", file_bytes(R"({"a": {"dtype": )", ""), "invalid JSON header"},
      {"not an object", file_bytes("[1, 2]", ""), "not a JSON object"},
      {"unknown dtype", file_bytes(one(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})"), eight),
       "unknown dtype 'F33'"},
      {"shape and offsets disagree", file_bytes(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), eight),
       "needs 12 bytes"},
      {"overlapping tensors",
       file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  eight + "1234"),
       "overlap"},
      {"gap between tensors",
       file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  eight + "1234"),
       "bytes [4, 8) of the data buffer belong to no tensor"},
      {"offsets past the data (truncated file)", file_bytes(ok_header, "1234"), "truncated"},
      {"trailing bytes", file_bytes(ok_header, eight + "xy"),
       "the last 2 bytes of the data buffer belong to no tensor"},
      {"duplicate names",
       file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  eight),
       "'a' appears twice"},
      {"no data_offsets", file_bytes(one(R"({"dtype":"F32","shape":[2]})"), eight), "no \"data_offsets\""},
      {"negative dimension", file_bytes(one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), eight),
       "non-negative integers"},
      {"begin after end", file_bytes(one(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"), eight),
       "0 <= begin <= end"},
      {"metadata not strings",
       file_bytes(R"({"__metadata__":{"step":3},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight),
       "metadata 'step' is not a string"},
      {"entry not an object", file_bytes(R"({"a":[0,8]})", ""), "not a JSON object"},
  };
}

TEST(Safetensors, RejectsMalformedFilesNamingFileAndProblem) {
  const ScratchDir dir;
  for (const MalformedCase& c : malformed_cases()) {
    SCOPED_TRACE(c.what);
    const auto path = dir / "bad.safetensors";
    hax::testing::write_file(path, c.bytes);
    expect_error_naming([&] { SafetensorsFile{path}; }, {path.string(), c.expected});
  }
  expect_error_naming([&] { SafetensorsFile{dir / "nothing-here.safetensors"}; }, {"nothing-here.safetensors"});
}

TEST(Safetensors, TruncatedCopyOfAGoodFileIsRejected) {
  const ScratchDir dir;
  save_safetensors(dir / "good.safetensors", std::vector<TensorData>{{"a", {100}, iota_values(100, 0.0f)}});
  const std::string bytes = hax::testing::read_file(dir / "good.safetensors");
  hax::testing::write_file(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 7));
  expect_error_naming([&] { SafetensorsFile{dir / "cut.safetensors"}; }, {"cut.safetensors", "truncated"});
}

TEST(Safetensors, OtherDtypesOpenButCannotBeReadAsFloats) {
  const ScratchDir dir;
  hax::testing::write_file(
      dir / "i.safetensors",
      file_bytes(R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0')));
  const SafetensorsFile file(dir / "i.safetensors");
  EXPECT_EQ(file.dtype("ids"), "I64");
  expect_error_naming([&] { file.read("ids"); }, {"'ids' is I64", "F32, F16 and BF16"});
}

}  // namespace
}  // namespace hax::io

namespace hax::io {
namespace {

// Every tensor a whole number of 64-byte lines: the flat buffer has no padding, so a file holds it as it is.
ParamStore unpadded_model() {
  ParamStore store;
  store.add("embeddings.weight", {8, 4});
  store.add("layers.0.mixer.A_log", {4, 4});
  store.add("norm_f.weight", {16});
  store.allocate();
  return store;
}

ParamStore unpadded_buffers() {
  ParamStore store;
  store.add("layers.0.mixer.lsh.projection", {2, 8});
  store.allocate();
  return store;
}

void expect_same_values(const ParamStore& a, const ParamStore& b) {
  for (const TensorInfo& t : a.tensors()) {
    const auto x = a.param(t.name), y = b.param(t.name);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin())) << t.name;
  }
}

TEST(SafetensorsMapped, AnUnpaddedLayoutIsMappedInPlaceAndWritesNeverReachTheFile) {
  const ScratchDir dir;
  ParamStore saved = unpadded_model(), saved_buffers = unpadded_buffers();
  Rng(3).fill_normal(saved.params(), 0.0f, 1.0f);
  Rng(4).fill_normal(saved_buffers.params(), 0.0f, 1.0f);
  save_params(dir / "model.safetensors", {&saved, &saved_buffers});
  const std::string before = hax::testing::read_file(dir / "model.safetensors");

  ParamStore loaded = unpadded_model(), loaded_buffers = unpadded_buffers();
  load_params_mapped(dir / "model.safetensors", {&loaded, &loaded_buffers});
  EXPECT_TRUE(loaded.params_are_file_mapping());
  EXPECT_TRUE(loaded_buffers.params_are_file_mapping());
  expect_same_values(saved, loaded);
  expect_same_values(saved_buffers, loaded_buffers);
  // Copy-on-write: the model may change its weights (training from a checkpoint); the file stays as it was.
  std::fill(loaded.params().begin(), loaded.params().end(), 7.0f);
  std::fill(loaded_buffers.params().begin(), loaded_buffers.params().end(), -7.0f);
  EXPECT_EQ(hax::testing::read_file(dir / "model.safetensors"), before);
  ParamStore again = unpadded_model(), again_buffers = unpadded_buffers();
  load_params(dir / "model.safetensors", {&again, &again_buffers});
  expect_same_values(saved, again);
}

TEST(SafetensorsMapped, APaddedLayoutOrAnotherOrderIsCopiedWithTheSameValues) {
  const ScratchDir dir;
  ParamStore saved = small_model();  // tensors of 40, 6, 3 and 4 floats: padded to 64-byte lines
  Rng(5).fill_normal(saved.params(), 0.0f, 1.0f);
  save_params(dir / "model.safetensors", saved);
  ParamStore loaded = small_model();
  load_params_mapped(dir / "model.safetensors", {&loaded});
  EXPECT_FALSE(loaded.params_are_file_mapping());
  expect_same_values(saved, loaded);

  // The same tensors in another order in the file: read one by one.
  ParamStore unpadded = unpadded_model();
  Rng(6).fill_normal(unpadded.params(), 0.0f, 1.0f);
  std::vector<TensorView> reversed = layout_views(unpadded, unpadded.params());
  std::reverse(reversed.begin(), reversed.end());
  save_safetensors(dir / "reversed.safetensors", reversed);
  ParamStore from_reversed = unpadded_model();
  load_params_mapped(dir / "reversed.safetensors", {&from_reversed});
  EXPECT_FALSE(from_reversed.params_are_file_mapping());
  expect_same_values(unpadded, from_reversed);
}

TEST(SafetensorsMapped, MissingTensorsAndWrongShapesAreStillNamed) {
  const ScratchDir dir;
  ParamStore saved = unpadded_model();
  save_params(dir / "model.safetensors", saved);
  ParamStore bigger = unpadded_model();
  ParamStore other;
  other.add("embeddings.weight", {4, 8});
  other.add("layers.0.mixer.A_log", {4, 4});
  other.add("norm_f.weight", {16});
  other.allocate();
  expect_error_naming([&] { load_params_mapped(dir / "model.safetensors", {&other}); },
                      {"model.safetensors", "embeddings.weight", "(8, 4)"});
  ParamStore with_extra = unpadded_model();
  ParamStore extra;
  extra.add("not.in.the.file", {16});
  extra.allocate();
  expect_error_naming([&] { load_params_mapped(dir / "model.safetensors", {&with_extra, &extra}); },
                      {"model.safetensors", "not.in.the.file"});
}

TEST(AlignedBufferMapping, ATooShortFileOrAnUnalignedOffsetIsAnErrorNamingTheFile) {
  const ScratchDir dir;
  {
    std::ofstream out(dir / "short.bin", std::ios::binary);
    out << std::string(100, 'x');
  }
  const std::string path = (dir / "short.bin").string();
  expect_error_naming([&] { AlignedBuffer::map_file(path, 0, 26); }, {"short.bin", "too short"});
  expect_error_naming([&] { AlignedBuffer::map_file(path, 8, 4); }, {"short.bin", "aligned"});
  expect_error_naming([&] { AlignedBuffer::map_file((dir / "none.bin").string(), 0, 1); }, {"none.bin"});
  const AlignedBuffer ok = AlignedBuffer::map_file(path, 64, 9);
  EXPECT_TRUE(ok.is_file_mapping());
  EXPECT_EQ(ok.size(), 9u);
}

TEST(AlignedBuffer, LargeBuffersAreZeroAndWritable) {
  // From kMappedBytes up (and from zero_pages) the memory comes from an anonymous mapping: zero without a memset.
  AlignedBuffer pages = AlignedBuffer::zero_pages(1000, "a test buffer");
  EXPECT_TRUE(std::all_of(pages.span().begin(), pages.span().end(), [](float v) { return v == 0.0f; }));
  pages.data()[999] = 1.0f;
  AlignedBuffer large(AlignedBuffer::kMappedBytes / sizeof(float) + 5, "a test buffer");
  EXPECT_TRUE(std::all_of(large.span().begin(), large.span().end(), [](float v) { return v == 0.0f; }));
  std::fill(large.span().begin(), large.span().end(), 2.0f);
  large.fill_zero();
  EXPECT_EQ(large.data()[large.size() - 1], 0.0f);
  AlignedBuffer moved = std::move(large);
  EXPECT_EQ(moved.size(), AlignedBuffer::kMappedBytes / sizeof(float) + 5);
}

}  // namespace
}  // namespace hax::io
