#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "hax/data/tokens_file.h"
#include "hax/engine/error.h"

namespace hax::data {
namespace {

std::vector<TokenSequence> parse(const std::string& text, int vocab = 10) {
  std::istringstream in(text);
  return read_token_sequences(in, "t.txt", vocab);
}

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(TokensFile, OneSequenceALineAnyWhitespaceBetweenIds) {
  const auto sequences = parse("1 2 3\n\t4  5\r\n9\n");
  ASSERT_EQ(sequences.size(), 3u);
  EXPECT_EQ(sequences[0], (TokenSequence{1, 2, 3}));
  EXPECT_EQ(sequences[1], (TokenSequence{4, 5}));
  EXPECT_EQ(sequences[2], (TokenSequence{9}));
  EXPECT_EQ(parse("7").size(), 1u);  // no final newline
}

TEST(TokensFile, ErrorsNameTheFileLineAndToken) {
  EXPECT_EQ(error_of("1 2\n3 x4\n"), "tokens file 't.txt', line 2, token 2: 'x4' is not a token id");
  EXPECT_EQ(error_of("1 10\n"), "tokens file 't.txt', line 1, token 2: id 10 is outside the checkpoint's vocabulary [0, 10)");
  EXPECT_EQ(error_of("-1\n"), "tokens file 't.txt', line 1, token 1: id -1 is outside the checkpoint's vocabulary [0, 10)");
  EXPECT_EQ(error_of("99999999999999999999\n"), "tokens file 't.txt', line 1, token 1: '99999999999999999999' is not a token id");
  EXPECT_EQ(error_of("1\n \n2\n"), "tokens file 't.txt', line 2 is blank: every line must hold a sequence");
  EXPECT_EQ(error_of(""), "tokens file 't.txt' holds no sequences");
}

}  // namespace
}  // namespace hax::data
