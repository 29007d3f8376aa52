// hax lm prepare's library side: a folder of text -> a tokenized corpus split by document, and LmCorpus::open's
// validation of every file in it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../support/expect_error.h"
#include "../support/test_support.h"
#include "hax/data/lm_corpus.h"
#include "lm_corpus_fixture.h"

namespace hax::data {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_naming;
using testing::read_file;
using testing::ScratchDir;
using testing::write_file;

CorpusPrepareOptions small_options(std::uint64_t seed = 1) {
  CorpusPrepareOptions o;
  o.heldout_fraction = 0.2;
  o.seed = seed;
  o.tokenizer.vocab_size = 400;
  o.tokenizer.seed = seed;
  return o;
}

std::vector<nlohmann::json> listing(const fs::path& corpus) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(corpus / "documents.jsonl"));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// One corpus prepared for the whole suite; tests that damage it work on a copy.
class LmCorpusTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir;
    texts_ = testing::write_text_folder(*scratch_ / "text");
    report_ = prepare_corpus(*scratch_ / "text", *scratch_ / "corpus", small_options());
  }
  static void TearDownTestSuite() { delete scratch_; }

  // A copy of the corpus with `damage` applied to it.
  fs::path damaged(const std::function<void(const fs::path&)>& damage) {
    const fs::path copy = dir_ / "copy";
    fs::copy(*scratch_ / "corpus", copy, fs::copy_options::recursive);
    damage(copy);
    return copy;
  }

  static inline ScratchDir* scratch_ = nullptr;
  static inline std::vector<std::pair<std::string, std::string>> texts_;
  static inline CorpusReport report_;
  ScratchDir dir_;
};

TEST_F(LmCorpusTest, ReportCountsEveryFile) {
  EXPECT_EQ(report_.files_seen, texts_.size() + 3);
  EXPECT_EQ(report_.documents, texts_.size());
  EXPECT_EQ(report_.skipped_binary, 1u);
  EXPECT_EQ(report_.skipped_short, 1u);
  EXPECT_EQ(report_.skipped_duplicate, 1u);
  EXPECT_EQ(report_.train_documents + report_.valid_documents, texts_.size());
  EXPECT_EQ(report_.valid_documents, 8u);  // round(0.2 * 40)
}

TEST_F(LmCorpusTest, DocumentsPartitionIntoTrainAndHeldOut) {
  const LmCorpus corpus = LmCorpus::open(*scratch_ / "corpus");
  std::map<std::string, std::string> split_of;
  std::map<std::string, std::uint64_t> count;
  for (const nlohmann::json& line : listing(*scratch_ / "corpus")) {
    const std::string path = line["path"];
    EXPECT_TRUE(split_of.emplace(path, line["split"]).second) << path << " listed twice";
    EXPECT_EQ(line["index"].get<std::uint64_t>(), count[line["split"]]++);
  }
  EXPECT_EQ(split_of.size(), texts_.size());
  for (const auto& [path, text] : texts_) EXPECT_TRUE(split_of.contains(path)) << path;
  EXPECT_EQ(count["train"], corpus.documents(Split::train));
  EXPECT_EQ(count["valid"], corpus.documents(Split::valid));
  EXPECT_EQ(corpus.documents(Split::train), report_.train_documents);
  EXPECT_EQ(corpus.tokens(Split::train).size(), report_.train_tokens);
  EXPECT_EQ(corpus.tokens(Split::valid).size(), report_.valid_tokens);
  expect_error_naming([&] { (void)corpus.tokens(Split::test); }, {"no test split"});
}

TEST_F(LmCorpusTest, EveryDocumentDecodesToItsTextAndEndsWithEos) {
  const LmCorpus corpus = LmCorpus::open(*scratch_ / "corpus");
  const Tokenizer& tokenizer = corpus.tokenizer();
  EXPECT_EQ(tokenizer.unk_id(), 0);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  EXPECT_EQ(tokenizer.pad_id(), 3);
  EXPECT_LE(corpus.vocab_size(), 400);
  const std::map<std::string, std::string> text_of(texts_.begin(), texts_.end());
  for (const nlohmann::json& line : listing(*scratch_ / "corpus")) {
    const Split split = parse_split(line["split"].get<std::string>());
    const auto ids = corpus.document(split, line["index"]);
    ASSERT_EQ(ids.size(), line["tokens"].get<std::size_t>());
    EXPECT_EQ(ids.back(), tokenizer.eos_id());
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tokenizer.eos_id()), 1);
    for (const std::uint16_t id : ids) EXPECT_LT(id, corpus.vocab_size());
    const std::vector<std::int32_t> body(ids.begin(), ids.end() - 1);
    EXPECT_EQ(tokenizer.decode(body), text_of.at(line["path"])) << line["path"];
    EXPECT_EQ(tokenizer.encode(text_of.at(line["path"])), body) << line["path"];
  }
  expect_error_naming([&] { (void)corpus.document(Split::valid, corpus.documents(Split::valid)); },
                      {"out of range"});
}

TEST_F(LmCorpusTest, AnyTextEncodesThroughByteFallback) {
  const Tokenizer tokenizer = Tokenizer::load(*scratch_ / "corpus/tokenizer.model");
  const std::string unseen = "Ωμέγα ☃ \t\ttabs\r\n  and a   run of spaces \x7f";
  const std::vector<std::int32_t> ids = tokenizer.encode(unseen);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tokenizer.unk_id()), 0);
  EXPECT_EQ(tokenizer.decode(ids), unseen);
}

TEST_F(LmCorpusTest, CorpusJsonRecordsTheTokenizerAndTheSplits) {
  const nlohmann::json j = nlohmann::json::parse(read_file(*scratch_ / "corpus/corpus.json"));
  EXPECT_EQ(j["format"], "hax-lm-corpus");
  EXPECT_EQ(j["tokenizer_sha256"], Tokenizer::load(*scratch_ / "corpus/tokenizer.model").fingerprint());
  EXPECT_EQ(j["tokenizer_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["splits"]["valid"]["documents"], report_.valid_documents);
  EXPECT_EQ(j["report"]["skipped_binary"], 1);
}

TEST_F(LmCorpusTest, SameSeedGivesIdenticalFilesAnotherSeedAnotherSplit) {
  prepare_corpus(*scratch_ / "text", dir_ / "again", small_options());
  for (const char* name : {"corpus.json", "tokenizer.model", "train.tokens", "train.index", "valid.tokens",
                           "valid.index", "documents.jsonl"})
    EXPECT_TRUE(read_file(*scratch_ / "corpus" / name) == read_file(dir_ / "again" / name)) << name;
  prepare_corpus(*scratch_ / "text", dir_ / "other", small_options(2));
  EXPECT_NE(read_file(*scratch_ / "corpus/documents.jsonl"), read_file(dir_ / "other/documents.jsonl"));
}

TEST_F(LmCorpusTest, BadSourcesAndAnExistingOutputAreRefused) {
  expect_error_naming([&] { prepare_corpus(dir_ / "missing", dir_ / "out", small_options()); },
                      {(dir_ / "missing").string(), "no such folder"});
  fs::create_directories(dir_ / "empty");
  expect_error_naming([&] { prepare_corpus(dir_ / "empty", dir_ / "out", small_options()); },
                      {(dir_ / "empty").string(), "0 text document(s) in 0 files"});
  fs::create_directories(dir_ / "binary");
  write_file(dir_ / "binary/a.bin", std::string(300, '\0'));
  write_file(dir_ / "binary/b.bin", std::string(300, '\xff'));
  expect_error_naming([&] { prepare_corpus(dir_ / "binary", dir_ / "out", small_options()); },
                      {(dir_ / "binary").string(), "2 binary"});
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  expect_error_naming([&] { prepare_corpus(*scratch_ / "text", *scratch_ / "corpus", small_options()); },
                      {(*scratch_ / "corpus").string(), "exists already"});
  CorpusPrepareOptions all_held_out = small_options();
  all_held_out.heldout_fraction = 1;
  expect_error_naming([&] { prepare_corpus(*scratch_ / "text", dir_ / "out", all_held_out); }, {"held-out"});
  fs::create_directories(dir_ / "badgz");
  write_file(dir_ / "badgz/a.txt.gz", std::string("\x1f\x8b\x08\x00", 4) + std::string(100, 'x'));
  expect_error_naming([&] { prepare_corpus(dir_ / "badgz", dir_ / "out", small_options()); },
                      {"a.txt.gz", "corrupt gzip"});
  for (const auto& entry : fs::directory_iterator(dir_.path()))
    EXPECT_FALSE(entry.path().filename().string().starts_with(".out")) << entry.path();
}

TEST_F(LmCorpusTest, DamagedCorpusFilesAreNamed) {
  const auto expect_open_fails = [&](const std::function<void(const fs::path&)>& damage,
                                     std::initializer_list<std::string> parts) {
    const fs::path copy = damaged(damage);
    expect_error_naming([&] { (void)LmCorpus::open(copy); }, parts);
    fs::remove_all(copy);
  };
  expect_open_fails([](const fs::path& d) { write_file(d / "corpus.json", "{\"format\": \"hax-lm-corpus\","); },
                    {"corpus.json", "not valid JSON"});
  expect_open_fails(
      [](const fs::path& d) {
        auto j = nlohmann::json::parse(read_file(d / "corpus.json"));
        j["splits"]["train"]["tokens"] = "many";
        write_file(d / "corpus.json", j.dump());
      },
      {"corpus.json", "\"tokens\" must be a non-negative integer"});
  expect_open_fails([](const fs::path& d) { fs::remove(d / "valid.index"); }, {"valid.index"});
  // A tokenizer from another corpus (another seed and vocabulary) in place of this one's.
  expect_open_fails(
      [&](const fs::path& d) {
        CorpusPrepareOptions other = small_options(7);
        other.tokenizer.vocab_size = 350;
        prepare_corpus(*scratch_ / "text", dir_ / "other", other);
        fs::copy_file(dir_ / "other/tokenizer.model", d / "tokenizer.model", fs::copy_options::overwrite_existing);
      },
      {"tokenizer.model", "SHA-256", "did not make these token files"});
  expect_open_fails([](const fs::path& d) { write_file(d / "tokenizer.model", "not a model"); },
                    {"tokenizer.model"});
  expect_open_fails(
      [](const fs::path& d) {
        const std::string bytes = read_file(d / "train.tokens");
        write_file(d / "train.tokens", bytes.substr(0, bytes.size() - 2));
      },
      {"train.tokens", "bytes, but corpus.json says"});
  expect_open_fails(
      [](const fs::path& d) {
        std::string bytes = read_file(d / "train.index");
        std::swap_ranges(bytes.begin() + 8, bytes.begin() + 16, bytes.begin() + 16);  // documents 1 and 2
        write_file(d / "train.index", bytes);
      },
      {"train.index", "offsets must increase"});
  expect_open_fails(
      [](const fs::path& d) {
        std::string bytes = read_file(d / "valid.tokens");
        bytes[0] = bytes[1] = '\xff';  // the first document's first token: 65535
        write_file(d / "valid.tokens", bytes);
      },
      {"valid.tokens", "token 0 is id 65535, outside the vocabulary"});
  expect_open_fails(
      [](const fs::path& d) {
        std::string bytes = read_file(d / "valid.tokens");
        bytes[bytes.size() - 2] = 5;  // the last document's eos
        write_file(d / "valid.tokens", bytes);
      },
      {"valid.tokens", "does not end with the eos id"});
  expect_error_naming([&] { (void)LmCorpus::open(dir_ / "nothing"); }, {"nothing", "no such corpus folder"});
}

TEST(Tokenizer, LoadErrorsNameTheFile) {
  const ScratchDir dir;
  expect_error_naming([&] { (void)Tokenizer::load(dir / "none.model"); }, {"none.model", "no such"});
  write_file(dir / "junk.model", "\x01\x02junk");
  expect_error_naming([&] { (void)Tokenizer::load(dir / "junk.model"); }, {"junk.model", "not a SentencePiece model"});
  TokenizerTrainOptions options;
  options.vocab_size = 100;
  expect_error_naming([&] { (void)Tokenizer::train({"some text"}, options, dir / "t.model"); },
                      {"vocabulary size 100"});
  EXPECT_FALSE(fs::exists(dir / "t.model"));
}

}  // namespace
}  // namespace hax::data
