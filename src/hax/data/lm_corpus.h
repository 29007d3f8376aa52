// A prepared real-text corpus (`hax lm prepare`): documents split into training and held-out sets (no document in
// both), tokenized by a SentencePiece model trained on the training documents only.
//
// Folder layout:
//   DIR/corpus.json       {"format": "hax-lm-corpus", "version": 1, "vocab_size": V, "tokenizer": "tokenizer.model",
//                          "tokenizer_sha256": "...", "source": "...", "heldout_fraction": f, "seed": s,
//                          "splits": {"train": {"documents": n, "tokens": m}, "valid": {...}}}
//   DIR/tokenizer.model   the SentencePiece model (data/tokenizer.h)
//   DIR/train.tokens      little-endian uint16 token ids of every training document, one after another, each
//   DIR/valid.tokens        document followed by the tokenizer's eos id
//   DIR/train.index       little-endian uint64 document start offsets into the .tokens file, then its total token
//   DIR/valid.index         count (documents + 1 entries, starting at 0, increasing: every document holds its eos)
//   DIR/documents.jsonl   one line per document: {"split", "index", "path" (relative to the source), "bytes",
//                         "tokens"}, so a user can tell which files were held out
// Everything is written to a temporary folder first and renamed into place, so a folder either is a whole corpus
// or does not exist.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hax/data/sample.h"
#include "hax/data/tokenizer.h"

namespace hax::data {

struct CorpusPrepareOptions {
  double heldout_fraction = 0.05;  // of the documents, chosen by a seeded shuffle (whole documents only)
  std::uint64_t seed = 1;
  std::uint64_t min_document_bytes = 64;  // shorter files are skipped (counted in the report)
  TokenizerTrainOptions tokenizer;
};

struct CorpusReport {
  // Binary: a NUL byte, or more than 1% of the bytes not UTF-8. Duplicate: the same bytes as an earlier document
  // (a symlink, a copy), which would otherwise land in both splits.
  std::uint64_t files_seen = 0, documents = 0, skipped_short = 0, skipped_binary = 0, skipped_duplicate = 0;
  std::uint64_t document_bytes = 0;
  std::uint64_t train_documents = 0, valid_documents = 0, train_tokens = 0, valid_tokens = 0;
};

// Reads every text file under `source` (recursively, in sorted path order; `.gz` files are decompressed), one
// document per file, and writes a corpus to `out`. Bytes that are not UTF-8 (under the binary threshold) become
// U+FFFD, so every document's text is what decode(encode(text)) gives back. `on_file` is called after each file. hax::Error (naming the folder or file) for a missing or empty
// source, a source with no text document, or an `out` that exists already.
CorpusReport prepare_corpus(const std::filesystem::path& source, const std::filesystem::path& out,
                            const CorpusPrepareOptions& options,
                            const std::function<void(std::uint64_t done, std::uint64_t total)>& on_file = {});

class LmCorpus {
 public:
  // Opens and validates a corpus folder (memory-mapped): the format and version, the tokenizer's fingerprint
  // against corpus.json, file sizes against the recorded counts, the index, and every id < vocab_size. hax::Error
  // naming the file and the problem otherwise.
  static LmCorpus open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const;
  const Tokenizer& tokenizer() const;
  int vocab_size() const;
  // Split::train or Split::valid (the held-out documents); hax::Error for Split::test.
  std::span<const std::uint16_t> tokens(Split split) const;
  std::span<const std::uint64_t> document_starts(Split split) const;  // documents + 1 offsets
  std::uint64_t documents(Split split) const;
  std::span<const std::uint16_t> document(Split split, std::uint64_t index) const;  // with its trailing eos

  LmCorpus(LmCorpus&&) noexcept;
  LmCorpus& operator=(LmCorpus&&) noexcept;
  ~LmCorpus();

 private:
  struct Impl;
  explicit LmCorpus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hax::data
