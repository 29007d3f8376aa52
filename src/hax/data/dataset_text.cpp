#include "hax/data/dataset_text.h"

#include <charconv>
#include <limits>

#include "hax/engine/error.h"

namespace hax::data {
namespace {

// Appends `value` to the line of `text` that starts at `line_start`, a space before all but its first number.
void append_number(std::string& text, std::size_t line_start, std::int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  if (text.size() > line_start) text.push_back(' ');
  text.append(digits, static_cast<std::size_t>(end - digits));
}

}  // namespace

TextDatasetWriter::TextDatasetWriter(std::ostream& out, std::uint32_t pad_len, std::int32_t pad_id)
    : out_(out), pad_len_(pad_len), pad_id_(pad_id) {}

void TextDatasetWriter::add(const data::Sample& sample) {
  data::check_sample_shape(sample, pad_len_, "text output");
  const std::size_t padding = pad_len_ - sample.tokens.size();
  line_.clear();
  for (std::int32_t token : sample.tokens) append_number(line_, 0, token);
  for (std::size_t i = 0; i < padding; ++i) append_number(line_, 0, pad_id_);
  line_.push_back('\n');
  const std::size_t mask_start = line_.size();
  for (std::uint8_t bit : sample.mask) append_number(line_, mask_start, bit);
  for (std::size_t i = 0; i < padding; ++i) append_number(line_, mask_start, 0);
  line_.push_back('\n');
  out_.write(line_.data(), static_cast<std::streamsize>(line_.size()));
}

TextDatasetReader::TextDatasetReader(const std::filesystem::path& path, std::int32_t pad_id)
    : path_(path), in_(path, std::ios::binary), pad_id_(pad_id) {
  check(in_.is_open(), "cannot open '", path.string(), "' for reading");
}

void TextDatasetReader::fail_at_line(const std::string& what) const {
  fail(path_.string(), ":", line_number_, ": ", what);
}

void TextDatasetReader::parse_numbers(std::vector<std::int64_t>& numbers) const {
  numbers.clear();
  const char* at = line_.data();
  const char* const end = at + line_.size();
  while (at < end) {
    std::int64_t value;
    const auto [stop, error] = std::from_chars(at, end, value);
    if (error != std::errc() || (stop < end && *stop != ' ')) fail_at_line("expected space-separated integers");
    numbers.push_back(value);
    at = stop < end ? stop + 1 : stop;
  }
}

bool TextDatasetReader::next(data::Sample& out) {
  if (!std::getline(in_, line_)) return false;
  ++line_number_;
  parse_numbers(tokens_);
  if (pad_len_ == 0) pad_len_ = static_cast<std::uint32_t>(tokens_.size());
  if (tokens_.size() != pad_len_ || pad_len_ == 0)
    fail_at_line(cat(tokens_.size(), " tokens where the first sample has ", pad_len_));
  for (std::int64_t token : tokens_)
    if (token < 0 || token > std::numeric_limits<std::int32_t>::max())
      fail_at_line(cat("token id ", token, " out of range"));
  if (!std::getline(in_, line_)) fail_at_line("token line without its mask line");
  ++line_number_;
  parse_numbers(mask_);
  if (mask_.size() != pad_len_) fail_at_line(cat(mask_.size(), " mask bits for ", pad_len_, " tokens"));
  std::size_t length = pad_len_;
  while (length > 0 && tokens_[length - 1] == pad_id_) --length;
  out.tokens.resize(length);
  out.mask.resize(length);
  for (std::size_t i = 0; i < pad_len_; ++i) {
    if (mask_[i] != 0 && mask_[i] != 1) fail_at_line("mask bits must be 0 or 1");
    if (mask_[i] == 1 && i >= length) fail_at_line("mask bit set on padding");
    if (i >= length) continue;
    out.mask[i] = static_cast<std::uint8_t>(mask_[i]);
    out.tokens[i] = static_cast<std::int32_t>(tokens_[i]);
  }
  out.cell = {};
  return true;
}

std::vector<data::Sample> read_text_dataset(const std::filesystem::path& path, std::int32_t pad_id) {
  TextDatasetReader reader(path, pad_id);
  std::vector<data::Sample> samples;
  for (data::Sample sample; reader.next(sample);) samples.push_back(std::move(sample));
  return samples;
}

}  // namespace hax::data
