// The binary dataset format that training reads through mmap. All integers little-endian.
//
//   offset  size  field
//   0       8     magic "HAXDATA\0"
//   8       4     version (1)
//   12      4     header size (128)
//   16      8     file size in bytes (truncation check)
//   24      8     number of samples n
//   32      4     pad_len          36  4  pad id
//   40      4     vocab size       44  4  token width in bytes: 1 when vocab <= 256, else 2
//   48      8+8   metadata offset, size: UTF-8 JSON {"task": ..., "params": {...generator knobs...}}
//   64      8+8   data offset, size: per sample, its unpadded tokens (width bytes each), then its mask bits
//                 packed 8 per byte, least significant bit first, unused high bits zero
//   80      8+8   index offset, size: u64 record offsets[n+1] (relative to the data section; record i spans
//                 [offsets[i], offsets[i+1])), u32 lengths[n], then u32 (n_context, n_key) cells[n]
//   96      8     checksum: Hasher64 over bytes [128, file size), then the header (this field zeroed) on top
//   104     24    reserved, zero
// Sections follow the header in the order metadata, data, index, each starting 8-byte aligned; padding is zero.
// Samples are written as a stream (only the index, 20 bytes a sample, is held until the end), and the header,
// which needs the final sizes and checksum, is written last.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hax/data/sample.h"
#include "hax/io/atomic_file.h"
#include "hax/io/hash.h"

namespace hax::data {

// The fixed 128-byte header, exactly as stored (see the table above).
struct BinaryDatasetHeader {
  char magic[8] = {};
  std::uint32_t version = 0;
  std::uint32_t header_size = 0;
  std::uint64_t file_size = 0;
  std::uint64_t num_samples = 0;
  std::uint32_t pad_len = 0;
  std::int32_t pad_id = 0;
  std::uint32_t vocab_size = 0;
  std::uint32_t token_width = 0;
  std::uint64_t metadata_offset = 0, metadata_size = 0;
  std::uint64_t data_offset = 0, data_size = 0;
  std::uint64_t index_offset = 0, index_size = 0;
  std::uint64_t checksum = 0;
  std::uint64_t reserved[3] = {};
};
static_assert(sizeof(BinaryDatasetHeader) == 128);

// What a dataset is, beyond its samples.
struct DatasetInfo {
  std::string task;       // "joint-recall", "mqar", ...
  nlohmann::json params;  // the generator's knobs, split, offset: enough to regenerate the file
  std::uint32_t pad_len = 0;
  std::int32_t pad_id = 0;
  std::uint32_t vocab_size = 0;
};

// The checksum that the header of the file `file` (`size` bytes, at least the header) should record; the recorded
// field itself does not count.
std::uint64_t binary_dataset_checksum(const unsigned char* file, std::uint64_t size);

class BinaryDatasetWriter {
 public:
  // Opens `path` atomically (nothing appears there unless finish() succeeds).
  BinaryDatasetWriter(const std::filesystem::path& path, DatasetInfo info);

  void add(const data::Sample& sample);  // checks lengths against pad_len and token ids against the vocab
  void finish();                         // index, header, checksum, then the atomic rename

 private:
  void put(const void* bytes, std::size_t size);
  void align();
  void check_sample(const data::Sample& sample) const;
  void encode_record(const data::Sample& sample);

  io::AtomicFile file_;
  BinaryDatasetHeader header_;
  io::Hasher64 payload_hash_;  // bytes [128, end), as they are written
  std::uint64_t position_ = 0;
  std::vector<std::uint64_t> offsets_{0};
  std::vector<std::uint32_t> lengths_;
  std::vector<std::uint32_t> cells_;
  std::vector<unsigned char> record_;
};

// A memory-mapped binary dataset, validated in full when opened: every failure is one hax::Error naming the file
// and what is wrong. Reads are const and thread-safe.
class BinaryDataset {
 public:
  explicit BinaryDataset(const std::filesystem::path& path);
  BinaryDataset(const BinaryDataset&) = delete;
  BinaryDataset& operator=(const BinaryDataset&) = delete;

  std::uint64_t size() const { return header_.num_samples; }
  std::uint32_t length(std::uint64_t i) const { return lengths_[i]; }
  data::Cell cell(std::uint64_t i) const { return {cells_[2 * i], cells_[2 * i + 1]}; }
  const DatasetInfo& info() const { return info_; }
  const BinaryDatasetHeader& header() const { return header_; }
  std::uint32_t pad_len() const { return header_.pad_len; }
  std::int32_t pad_id() const { return header_.pad_id; }

  // pad_len tokens (padded with the pad id) and pad_len mask bytes (0 on padding).
  void read_padded(std::uint64_t i, std::int32_t* tokens, std::uint8_t* mask) const;
  data::Sample sample(std::uint64_t i) const;  // unpadded

 private:
  // The file mapped read-only; a member of its own so that a constructor that throws still unmaps it.
  struct Mapping {
    explicit Mapping(const std::filesystem::path& path);
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    const unsigned char* bytes = nullptr;
    std::uint64_t size = 0;
  };

  [[noreturn]] void fail_file(const std::string& what) const;
  void validate_header();
  void validate_sections();
  void validate_records() const;
  void decode(std::uint64_t i, std::int32_t* tokens, std::uint8_t* mask) const;  // length(i) of each, unpadded
  const unsigned char* record(std::uint64_t i) const { return data_ + offsets_[i]; }

  std::filesystem::path path_;
  Mapping map_;
  BinaryDatasetHeader header_;
  DatasetInfo info_;
  const unsigned char* data_ = nullptr;
  const std::uint64_t* offsets_ = nullptr;
  const std::uint32_t* lengths_ = nullptr;
  const std::uint32_t* cells_ = nullptr;
};

}  // namespace hax::data
