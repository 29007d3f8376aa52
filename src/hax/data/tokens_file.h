// Token files, as `hax logits` reads them: one sequence a line, token ids in decimal separated by whitespace.
// Every line must hold at least one id, every id must be inside the model's vocabulary, and the file must hold at
// least one line; anything else is a hax::Error that names the file, the line and (for a bad id) the token.
#pragma once

#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>
#include <vector>

namespace hax::data {

using TokenSequence = std::vector<std::int32_t>;

// `name` is how errors refer to the source (the file's path).
std::vector<TokenSequence> read_token_sequences(std::istream& in, const std::string& name, int vocab_size);
std::vector<TokenSequence> read_token_sequences(const std::filesystem::path& path, int vocab_size);

}  // namespace hax::data
