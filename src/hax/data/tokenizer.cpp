#include "hax/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>

#include "hax/data/sample.h"
#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"
#include "hax/io/sha256.h"

namespace hax::data {
namespace {

// Byte fallback takes 256 ids on top of the four special ones, so a vocabulary needs more than that to hold any
// merged piece.
constexpr int kReservedIds = 4 + 256;

// The training sentences: every non-empty line of every document (SentencePiece trains on lines; newlines and other
// bytes outside the vocabulary are encoded through byte fallback).
class DocumentLines : public sentencepiece::SentenceIterator {
 public:
  explicit DocumentLines(const std::vector<std::string>& documents) : documents_(documents) { advance(); }
  bool done() const override { return document_ >= documents_.size(); }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  // Moves to the next non-empty line, across documents.
  void advance() {
    while (document_ < documents_.size()) {
      const std::string& text = documents_[document_];
      if (offset_ >= text.size()) {
        ++document_, offset_ = 0;
        continue;
      }
      std::size_t end = text.find('\n', offset_);
      if (end == std::string::npos) end = text.size();
      line_.assign(text, offset_, end - offset_);
      offset_ = end + 1;
      if (!line_.empty()) return;
    }
  }

  const std::vector<std::string>& documents_;
  std::size_t document_ = 0, offset_ = 0;
  std::string line_;
};

std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path.string(), ": cannot open the tokenizer model");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  check(!in.bad(), path.string(), ": cannot read the tokenizer model");
  return bytes.str();
}

}  // namespace

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
  std::string fingerprint;

  // A tokenizer from a serialized model; `name` (the file) goes into every error.
  static std::unique_ptr<Impl> from_model(const std::string& bytes, const std::string& name) {
    auto impl = std::make_unique<Impl>();
    const auto status = impl->processor.LoadFromSerializedProto(bytes);
    check(status.ok(), name, ": not a SentencePiece model (", status.ToString(), ")");
    check(impl->processor.GetPieceSize() <= kMaxVocab, name, ": ", impl->processor.GetPieceSize(),
          " pieces, more than the ", kMaxVocab, " ids 16-bit token files can hold");
    impl->fingerprint = io::sha256_hex(bytes);
    return impl;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  check(std::filesystem::is_regular_file(model_file), model_file.string(), ": no such tokenizer model file");
  return Tokenizer(Impl::from_model(read_whole_file(model_file), model_file.string()));
}

Tokenizer Tokenizer::train(const std::vector<std::string>& documents, const TokenizerTrainOptions& options,
                           const std::filesystem::path& model_file) {
  check(options.vocab_size > kReservedIds && options.vocab_size <= kMaxVocab, "tokenizer: vocabulary size ",
        options.vocab_size, " is outside (", kReservedIds, ", ", kMaxVocab, "]: ", kReservedIds,
        " ids are taken by <unk> <s> </s> <pad> and the 256 byte pieces, and ids are stored in 16 bits");
  check(options.model_type == "bpe" || options.model_type == "unigram", "tokenizer: unknown model type '",
        options.model_type, "' (expected bpe or unigram)");
  check(options.threads >= 1, "tokenizer: threads must be at least 1, got ", options.threads);
  check(!documents.empty(), "tokenizer: no training documents");
  const std::unordered_map<std::string, std::string> spec = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(options.threads)},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "3"},
      // Any byte sequence encodes, and decode(encode(text)) gives the text back: no normalization, whitespace kept
      // as it is (no dummy prefix, runs of spaces not collapsed), so indentation and line breaks survive.
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"allow_whitespace_only_pieces", "true"},
      // One token per digit, so numbers (the needles of the long-context tasks) are spelled the same everywhere.
      {"split_digits", "true"},
      // A small corpus may not have enough distinct merges for the vocabulary asked for: it then gets fewer.
      {"hard_vocab_limit", "false"},
      {"minloglevel", "2"},
      {"model_prefix", ""},
  };
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(options.seed));
  DocumentLines lines(documents);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(spec, &lines, &model);
  check(status.ok(), model_file.string(), ": training the tokenizer failed: ", status.ToString());
  auto impl = Impl::from_model(model, model_file.string());
  io::AtomicFile out(model_file);
  out.stream().write(model.data(), static_cast<std::streamsize>(model.size()));
  out.commit();
  return Tokenizer(std::move(impl));
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = impl_->processor.Encode(text, &ids);
  check(status.ok(), "tokenizer: cannot encode text: ", status.ToString());
  return {ids.begin(), ids.end()};
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  const int vocab = vocab_size();
  for (const std::int32_t id : ids) check(id >= 0 && id < vocab, "tokenizer: id ", id, " is outside the vocabulary of ", vocab);
  std::string text;
  const auto status = impl_->processor.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  check(status.ok(), "tokenizer: cannot decode ids: ", status.ToString());
  return text;
}

int Tokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }
int Tokenizer::unk_id() const { return impl_->processor.unk_id(); }
int Tokenizer::bos_id() const { return impl_->processor.bos_id(); }
int Tokenizer::eos_id() const { return impl_->processor.eos_id(); }
int Tokenizer::pad_id() const { return impl_->processor.pad_id(); }
const std::string& Tokenizer::fingerprint() const { return impl_->fingerprint; }

}  // namespace hax::data
