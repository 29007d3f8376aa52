#include "hax/data/dataset_binary.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include "hax/engine/error.h"

namespace hax::data {
namespace {

static_assert(std::endian::native == std::endian::little, "the dataset format is little-endian, like its hosts");

constexpr char kMagic[8] = {'H', 'A', 'X', 'D', 'A', 'T', 'A', '\0'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint64_t kIndexBytesPerSample = 8 + 4 + 8;

std::uint32_t token_width_for(std::uint32_t vocab_size) { return vocab_size <= 256 ? 1 : 2; }

std::uint64_t mask_bytes(std::uint64_t length) { return (length + 7) / 8; }

std::uint64_t record_bytes(std::uint64_t length, std::uint32_t width) { return length * width + mask_bytes(length); }

// Token t of a record's little-endian token array.
std::uint32_t token_at(const unsigned char* tokens, std::uint32_t width, std::uint64_t t) {
  return width == 1 ? tokens[t] : tokens[2 * t] | static_cast<std::uint32_t>(tokens[2 * t + 1]) << 8;
}

// The checksum covers the payload and then the header with its checksum field zeroed, so a flipped byte anywhere
// after the magic, version and size fields is caught.
std::uint64_t combined_checksum(std::uint64_t payload_digest, BinaryDatasetHeader header) {
  header.checksum = 0;
  io::Hasher64 hasher(payload_digest);
  hasher.update(&header, sizeof header);
  return hasher.digest();
}

}  // namespace

std::uint64_t binary_dataset_checksum(const unsigned char* file, std::uint64_t size) {
  check(size >= sizeof(BinaryDatasetHeader), "a binary dataset has at least its ", sizeof(BinaryDatasetHeader),
        "-byte header, got ", size, " bytes");
  BinaryDatasetHeader header;
  std::memcpy(&header, file, sizeof header);
  io::Hasher64 payload(0);
  payload.update(file + sizeof header, size - sizeof header);
  return combined_checksum(payload.digest(), header);
}

// ---- writer -------------------------------------------------------------------------------------------------

BinaryDatasetWriter::BinaryDatasetWriter(const std::filesystem::path& path, DatasetInfo info) : file_(path) {
  check(info.vocab_size >= 1 && info.vocab_size <= data::kMaxVocab, "'", path.string(), "': vocab size ",
        info.vocab_size, " out of range [1, ", data::kMaxVocab, "]");
  check(info.pad_id >= 0 && static_cast<std::uint32_t>(info.pad_id) < info.vocab_size, "'", path.string(), "': pad id ",
        info.pad_id, " is not in the vocabulary");
  std::memcpy(header_.magic, kMagic, sizeof kMagic);
  header_.version = kVersion;
  header_.header_size = sizeof(BinaryDatasetHeader);
  header_.pad_len = info.pad_len;
  header_.pad_id = info.pad_id;
  header_.vocab_size = info.vocab_size;
  header_.token_width = token_width_for(info.vocab_size);
  const BinaryDatasetHeader placeholder{};  // the real header is written last, once sizes and checksum are known
  file_.stream().write(reinterpret_cast<const char*>(&placeholder), sizeof placeholder);
  position_ = sizeof placeholder;
  const std::string metadata = nlohmann::json{{"task", info.task}, {"params", info.params}}.dump();
  header_.metadata_offset = position_;
  header_.metadata_size = metadata.size();
  put(metadata.data(), metadata.size());
  align();
  header_.data_offset = position_;
}

void BinaryDatasetWriter::put(const void* bytes, std::size_t size) {
  file_.stream().write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  payload_hash_.update(bytes, size);
  position_ += size;
}

void BinaryDatasetWriter::align() {
  const unsigned char zeros[8] = {};
  put(zeros, (8 - position_ % 8) % 8);
}

void BinaryDatasetWriter::check_sample(const data::Sample& sample) const {
  const std::string path = cat("'", file_.path().string(), "'");
  data::check_sample_shape(sample, header_.pad_len, path);
  // As unsigned, a negative id is huge, so one maximum checks both ends (and vectorizes).
  std::uint32_t highest = 0;
  for (std::int32_t token : sample.tokens) highest = std::max(highest, static_cast<std::uint32_t>(token));
  check(sample.tokens.empty() || highest < header_.vocab_size, path, ": sample ", lengths_.size(),
        " has a token id outside the vocabulary of ", header_.vocab_size);
}

void BinaryDatasetWriter::encode_record(const data::Sample& sample) {
  const std::size_t length = sample.tokens.size();
  record_.resize(record_bytes(length, header_.token_width));
  unsigned char* out = record_.data();
  if (header_.token_width == 1) {
    for (std::size_t t = 0; t < length; ++t) out[t] = static_cast<unsigned char>(sample.tokens[t]);
  } else {
    for (std::size_t t = 0; t < length; ++t) {
      out[2 * t] = static_cast<unsigned char>(sample.tokens[t]);
      out[2 * t + 1] = static_cast<unsigned char>(sample.tokens[t] >> 8);
    }
  }
  unsigned char* bits = out + length * header_.token_width;
  for (std::size_t byte = 0; byte < mask_bytes(length); ++byte) {
    unsigned packed = 0;
    for (std::size_t t = 8 * byte; t < std::min(length, 8 * byte + 8); ++t)
      packed |= (sample.mask[t] ? 1u : 0u) << (t % 8);
    bits[byte] = static_cast<unsigned char>(packed);
  }
}

void BinaryDatasetWriter::add(const data::Sample& sample) {
  check_sample(sample);
  encode_record(sample);
  put(record_.data(), record_.size());
  offsets_.push_back(position_ - header_.data_offset);
  lengths_.push_back(static_cast<std::uint32_t>(sample.tokens.size()));
  cells_.push_back(sample.cell.n_context);
  cells_.push_back(sample.cell.n_key);
  check(file_.stream().good(), "cannot write '", file_.path().string(), "': write failed (disk full?)");
}

void BinaryDatasetWriter::finish() {
  header_.num_samples = lengths_.size();
  header_.data_size = position_ - header_.data_offset;
  align();
  header_.index_offset = position_;
  put(offsets_.data(), offsets_.size() * sizeof offsets_[0]);
  put(lengths_.data(), lengths_.size() * sizeof lengths_[0]);
  put(cells_.data(), cells_.size() * sizeof cells_[0]);
  header_.index_size = position_ - header_.index_offset;
  header_.file_size = position_;
  header_.checksum = combined_checksum(payload_hash_.digest(), header_);
  file_.stream().seekp(0);
  file_.stream().write(reinterpret_cast<const char*>(&header_), sizeof header_);
  file_.commit();
}

// ---- reader -------------------------------------------------------------------------------------------------

BinaryDataset::Mapping::Mapping(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '", path.string(), "': ", std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    fail("cannot read '", path.string(), "': not a regular file");
  }
  size = static_cast<std::uint64_t>(status.st_size);
  void* mapped = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  const int map_errno = errno;
  ::close(fd);
  if (mapped == MAP_FAILED) fail("cannot map '", path.string(), "': ", std::strerror(map_errno));
  bytes = static_cast<const unsigned char*>(mapped);
}

BinaryDataset::Mapping::~Mapping() {
  if (bytes != nullptr) ::munmap(const_cast<unsigned char*>(bytes), size);
}

BinaryDataset::BinaryDataset(const std::filesystem::path& path) : path_(path), map_(path) {
  validate_header();
  validate_sections();
  validate_records();
}

void BinaryDataset::fail_file(const std::string& what) const { fail("dataset '", path_.string(), "': ", what); }

void BinaryDataset::validate_header() {
  if (map_.size >= sizeof kMagic && std::memcmp(map_.bytes, kMagic, sizeof kMagic) != 0)
    fail_file("not a hax binary dataset (bad magic)");
  if (map_.size < sizeof header_)
    fail_file(cat("truncated: ", map_.size, " bytes, less than the ", sizeof header_, "-byte header"));
  std::memcpy(&header_, map_.bytes, sizeof header_);
  if (header_.version != kVersion)
    fail_file(cat("unsupported format version ", header_.version, " (this build reads version ", kVersion, ")"));
  if (header_.header_size != sizeof header_) fail_file(cat("bad header size ", header_.header_size));
  if (header_.file_size > map_.size)
    fail_file(cat("truncated: the header records ", header_.file_size, " bytes but the file has ", map_.size));
  if (header_.file_size < map_.size)
    fail_file(cat("has ", map_.size - header_.file_size, " unexpected bytes after its recorded end"));
  if (binary_dataset_checksum(map_.bytes, map_.size) != header_.checksum)
    fail_file("checksum mismatch: the file is corrupted");
}

void BinaryDataset::validate_sections() {
  const BinaryDatasetHeader& h = header_;
  // Lengths are int in the model's batches (as in PyTorch's varlen kernels).
  if (h.pad_len > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()))
    fail_file(cat("pad_len ", h.pad_len, " is longer than any sequence hax can hold (2^31 - 1 tokens)"));
  if (h.vocab_size < 1 || h.vocab_size > data::kMaxVocab) fail_file(cat("vocab size ", h.vocab_size, " out of range"));
  if (h.token_width != token_width_for(h.vocab_size))
    fail_file(cat("token width ", h.token_width, " does not match vocab size ", h.vocab_size));
  if (h.pad_id < 0 || static_cast<std::uint32_t>(h.pad_id) >= h.vocab_size)
    fail_file(cat("pad id ", h.pad_id, " outside the vocabulary"));
  std::uint64_t end = sizeof header_;
  const auto check_section = [&](const char* name, std::uint64_t offset, std::uint64_t size) {
    if (offset < end || offset % 8 != 0 || offset > h.file_size || size > h.file_size - offset)
      fail_file(cat(name, " section [", offset, ", +", size, ") is misplaced or runs past the end of the file"));
    end = offset + size;
  };
  check_section("metadata", h.metadata_offset, h.metadata_size);
  check_section("data", h.data_offset, h.data_size);
  check_section("index", h.index_offset, h.index_size);
  if (h.num_samples > h.index_size / kIndexBytesPerSample || h.index_size != kIndexBytesPerSample * h.num_samples + 8)
    fail_file(cat("index of ", h.index_size, " bytes does not fit ", h.num_samples, " samples"));
  const auto* index = map_.bytes + h.index_offset;
  offsets_ = reinterpret_cast<const std::uint64_t*>(index);
  lengths_ = reinterpret_cast<const std::uint32_t*>(index + 8 * (h.num_samples + 1));
  cells_ = lengths_ + h.num_samples;
  data_ = map_.bytes + h.data_offset;
  const auto* metadata = reinterpret_cast<const char*>(map_.bytes + h.metadata_offset);
  const auto json = nlohmann::json::parse(metadata, metadata + h.metadata_size, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("task") || !json["task"].is_string())
    fail_file("metadata is not a JSON object with a \"task\"");
  info_ = {json["task"].get<std::string>(), json.value("params", nlohmann::json::object()), h.pad_len, h.pad_id,
           h.vocab_size};
}

void BinaryDataset::validate_records() const {
  const std::uint32_t width = header_.token_width;
  if (offsets_[0] != 0) fail_file("the first record does not start the data section");
  for (std::uint64_t i = 0; i < size(); ++i) {
    const std::uint64_t length = lengths_[i];
    if (length > header_.pad_len) fail_file(cat("sample ", i, " has ", length, " tokens, more than pad_len"));
    if (offsets_[i + 1] < offsets_[i] || offsets_[i + 1] - offsets_[i] != record_bytes(length, width) ||
        offsets_[i + 1] > header_.data_size)
      fail_file(cat("record offsets of sample ", i, " are inconsistent with its length"));
    const unsigned char* tokens = record(i);
    std::uint32_t highest = 0;
    for (std::uint64_t t = 0; t < length; ++t) highest = std::max(highest, token_at(tokens, width, t));
    if (length > 0 && highest >= header_.vocab_size)
      fail_file(cat("sample ", i, " has token id ", highest, " outside the vocabulary of ", header_.vocab_size));
    const unsigned char* mask = tokens + length * width;
    if (length % 8 != 0 && (mask[length / 8] >> (length % 8)) != 0)
      fail_file(cat("sample ", i, " has mask bits set past its end"));
  }
  if (offsets_[size()] != header_.data_size) fail_file("the records do not fill the data section");
}

void BinaryDataset::decode(std::uint64_t i, std::int32_t* tokens, std::uint8_t* mask) const {
  const std::uint32_t length = lengths_[i];
  const unsigned char* bytes = record(i);
  for (std::uint32_t t = 0; t < length; ++t)
    tokens[t] = static_cast<std::int32_t>(token_at(bytes, header_.token_width, t));
  const unsigned char* bits = bytes + static_cast<std::size_t>(length) * header_.token_width;
  for (std::uint32_t t = 0; t < length; ++t) mask[t] = (bits[t / 8] >> (t % 8)) & 1;
}

void BinaryDataset::read_padded(std::uint64_t i, std::int32_t* tokens, std::uint8_t* mask) const {
  decode(i, tokens, mask);
  std::fill(tokens + lengths_[i], tokens + header_.pad_len, header_.pad_id);
  std::fill(mask + lengths_[i], mask + header_.pad_len, 0);
}

// Only the sample's own length is allocated: pad_len may be far longer than any sample.
data::Sample BinaryDataset::sample(std::uint64_t i) const {
  data::Sample out;
  out.tokens.resize(length(i));
  out.mask.resize(length(i));
  decode(i, out.tokens.data(), out.mask.data());
  out.cell = cell(i);
  return out;
}

}  // namespace hax::data
