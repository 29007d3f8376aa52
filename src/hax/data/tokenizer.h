// Text <-> token ids for real-text language models: a SentencePiece model (BPE by default), trained on the training
// documents of a corpus and saved beside its shards (data/lm_corpus.h). SentencePiece stays behind this interface:
// nothing else in hax includes its headers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hax::data {

struct TokenizerTrainOptions {
  int vocab_size = 8192;
  std::string model_type = "bpe";          // "bpe" or "unigram" (SentencePiece's model types)
  double character_coverage = 0.9995;      // SentencePiece's default for scripts with many characters
  std::uint64_t max_sentences = 2000000;   // input lines sampled for training (SentencePiece's input_sentence_size)
  int threads = 1;
  std::uint64_t seed = 1;
};

class Tokenizer {
 public:
  // Reads a SentencePiece model file; hax::Error naming the file when it is missing or not a model.
  static Tokenizer load(const std::filesystem::path& model_file);
  // Trains on `documents` (the training split only) and writes the model to `model_file` (atomically).
  // Ids: 0 <unk>, 1 <s> (bos), 2 </s> (eos), 3 <pad>, so that pad/bos/eos agree with hax's model configs.
  static Tokenizer train(const std::vector<std::string>& documents, const TokenizerTrainOptions& options,
                         const std::filesystem::path& model_file);

  // No bos/eos added. Models trained here keep text as it is (no normalization, byte fallback), so
  // decode(encode(text)) == text for any UTF-8 text without U+2581, SentencePiece's space mark (it decodes to ' ').
  std::vector<std::int32_t> encode(std::string_view text) const;
  std::string decode(std::span<const std::int32_t> ids) const;
  int vocab_size() const;
  int unk_id() const;
  int bos_id() const;
  int eos_id() const;
  int pad_id() const;
  // SHA-256 (hex) of the model file's bytes: a corpus records it, so shards and a tokenizer that do not belong
  // together are refused.
  const std::string& fingerprint() const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hax::data
