// The reference's text format (tests/fixtures/joint_recall_seed1_train_first288.txt): two lines per sample, the
// token ids padded with the pad id to pad_len, then pad_len mask bits; single spaces between numbers, '\n' after
// each line, nothing else. The text carries no cells.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "hax/data/sample.h"

namespace hax::data {

class TextDatasetWriter {
 public:
  TextDatasetWriter(std::ostream& out, std::uint32_t pad_len, std::int32_t pad_id);

  void add(const data::Sample& sample);

 private:
  std::ostream& out_;
  std::uint32_t pad_len_;
  std::int32_t pad_id_;
  std::string line_;  // reused, so formatting allocates nothing per sample
};

// Reads the format back. A sample's length is its position after the last token that is not the pad id, so a
// sample may not end in the pad id (no generator produces one) and mask bits on padding are an error.
class TextDatasetReader {
 public:
  TextDatasetReader(const std::filesystem::path& path, std::int32_t pad_id);

  // False at the end of the file; a malformed sample is a hax::Error naming the file and line.
  bool next(data::Sample& out);
  std::uint32_t pad_len() const { return pad_len_; }  // from the first line; 0 before it

 private:
  [[noreturn]] void fail_at_line(const std::string& what) const;
  void parse_numbers(std::vector<std::int64_t>& numbers) const;

  std::filesystem::path path_;
  std::ifstream in_;
  std::int32_t pad_id_;
  std::uint32_t pad_len_ = 0;
  std::uint64_t line_number_ = 0;
  std::string line_;
  std::vector<std::int64_t> tokens_, mask_;
};

std::vector<data::Sample> read_text_dataset(const std::filesystem::path& path, std::int32_t pad_id);

}  // namespace hax::data
