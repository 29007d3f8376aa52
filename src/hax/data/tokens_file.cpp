#include "hax/data/tokens_file.h"

#include <charconv>
#include <fstream>

#include "hax/engine/error.h"

namespace hax::data {
namespace {

// One line: ids separated by whitespace. Positions in errors are 1-based.
TokenSequence parse_sequence(const std::string& text, const std::string& name, std::size_t line, int vocab_size) {
  TokenSequence ids;
  const char* const end = text.data() + text.size();
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  for (const char* at = text.data(); at != end;) {
    if (is_space(*at)) {
      ++at;
      continue;
    }
    const char* word_end = at;
    while (word_end != end && !is_space(*word_end)) ++word_end;
    const std::string word(at, word_end);
    const std::string where = cat("tokens file '", name, "', line ", line, ", token ", ids.size() + 1);
    std::int64_t id = 0;
    const auto [parsed_to, error] = std::from_chars(at, word_end, id);
    check(error == std::errc() && parsed_to == word_end, where, ": '", word, "' is not a token id");
    check(id >= 0 && id < vocab_size, where, ": id ", id, " is outside the checkpoint's vocabulary [0, ", vocab_size,
          ")");
    ids.push_back(static_cast<std::int32_t>(id));
    at = word_end;
  }
  check(!ids.empty(), "tokens file '", name, "', line ", line, " is blank: every line must hold a sequence");
  return ids;
}

}  // namespace

std::vector<TokenSequence> read_token_sequences(std::istream& in, const std::string& name, int vocab_size) {
  std::vector<TokenSequence> sequences;
  std::string text;
  for (std::size_t line = 1; std::getline(in, text); ++line)
    sequences.push_back(parse_sequence(text, name, line, vocab_size));
  check(in.eof(), "cannot read tokens file '", name, "'");
  check(!sequences.empty(), "tokens file '", name, "' holds no sequences");
  return sequences;
}

std::vector<TokenSequence> read_token_sequences(const std::filesystem::path& path, int vocab_size) {
  std::ifstream in(path);
  check(in.good(), "cannot open tokens file '", path.string(), "'");
  return read_token_sequences(in, path.string(), vocab_size);
}

}  // namespace hax::data
