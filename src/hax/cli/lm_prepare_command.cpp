// hax lm prepare | tokenize | detokenize: a folder of text -> a tokenized corpus (data/lm_corpus.h), and the
// corpus's tokenizer from the command line (for looking at what a model sees, and for debugging evaluations).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/data/lm_corpus.h"
#include "hax/data/tokens_file.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"

namespace hax::cli {
namespace {

constexpr const char* kDefaultSource = "/usr/share/doc/linux-doc-6.1/Documentation";

struct PrepareCommand {
  std::string source = kDefaultSource;
  std::string out;
  int threads = 0;
  data::CorpusPrepareOptions options;
};

std::string megabytes(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

void run_prepare(const PrepareCommand& c) {
  if (c.source == kDefaultSource)
    check(std::filesystem::is_directory(c.source), c.source,
          ": no such folder (the default corpus: install linux-doc-6.1, or pass --source DIR)");
  set_num_threads(c.threads);
  data::CorpusPrepareOptions options = c.options;
  options.tokenizer.threads = num_threads();
  options.tokenizer.seed = options.seed;
  const auto start = std::chrono::steady_clock::now();
  std::cerr << "hax lm prepare: " << c.source << " -> " << c.out << " (vocabulary " << options.tokenizer.vocab_size
            << ", held out " << options.heldout_fraction << ", seed " << options.seed << ", " << num_threads()
            << " threads)\n";
  std::unique_ptr<Progress> bar;
  const data::CorpusReport r = data::prepare_corpus(c.source, c.out, options, [&](std::uint64_t done,
                                                                                  std::uint64_t total) {
    if (!bar) bar = std::make_unique<Progress>("read", total, "files");
    bar->update(done);
    if (done == total) {
      bar->finish();
      std::cerr << "hax lm prepare: training the tokenizer on the training documents, then encoding\n";
    }
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const data::LmCorpus corpus = data::LmCorpus::open(c.out);
  const std::uint64_t tokens = r.train_tokens + r.valid_tokens;
  std::cout << "corpus:     " << c.out << " (summary in corpus.json, files per split in documents.jsonl)\n"
            << "files:      " << r.files_seen << " read; " << r.documents << " documents, "
            << megabytes(r.document_bytes) << "; skipped " << r.skipped_binary << " binary, " << r.skipped_short
            << " shorter than " << options.min_document_bytes << " bytes, " << r.skipped_duplicate
            << " duplicates\n"
            << "tokenizer:  " << options.tokenizer.model_type << ", " << corpus.vocab_size()
            << " pieces, sha256 " << corpus.tokenizer().fingerprint() << "\n"
            << "train:      " << r.train_documents << " documents, " << r.train_tokens << " tokens\n"
            << "valid:      " << r.valid_documents << " documents, " << r.valid_tokens << " tokens (held out)\n";
  std::printf("bytes/tok:  %.2f\nwall time:  %.1f s\n",
              tokens == 0 ? 0.0 : static_cast<double>(r.document_bytes) / static_cast<double>(tokens), seconds);
}

// The whole of a file, or of stdin for "-".
std::string read_input(const std::string& path) {
  std::ostringstream bytes;
  if (path == "-") {
    bytes << std::cin.rdbuf();
    return bytes.str();
  }
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path, ": cannot open");
  bytes << in.rdbuf();
  return bytes.str();
}

void write_stdout(const std::string& text) {
  std::cout << text;
  std::cout.flush();
  check(std::cout.good(), "cannot write to stdout");
}

struct TokenizeCommand {
  std::string corpus;
  std::string text = "-";
};

void run_tokenize(const TokenizeCommand& c) {
  const data::LmCorpus corpus = data::LmCorpus::open(c.corpus);
  std::string line;
  for (const std::int32_t id : corpus.tokenizer().encode(read_input(c.text)))
    line += (line.empty() ? "" : " ") + std::to_string(id);
  write_stdout(line + "\n");
}

struct DetokenizeCommand {
  std::string corpus;
  std::string ids = "-";
  std::string split;
  std::int64_t document = -1;
};

void run_detokenize(const DetokenizeCommand& c) {
  const data::LmCorpus corpus = data::LmCorpus::open(c.corpus);
  const data::Tokenizer& tokenizer = corpus.tokenizer();
  if (c.document >= 0) {
    const auto ids = corpus.document(data::parse_split(c.split.empty() ? "valid" : c.split),
                                     static_cast<std::uint64_t>(c.document));
    write_stdout(tokenizer.decode(std::vector<std::int32_t>(ids.begin(), ids.end())));
    return;
  }
  check(c.split.empty(), "--split needs --document");
  std::istringstream in(read_input(c.ids));
  const auto sequences = data::read_token_sequences(in, c.ids == "-" ? "stdin" : c.ids, tokenizer.vocab_size());
  std::string text;
  for (std::size_t i = 0; i < sequences.size(); ++i) text += (i == 0 ? "" : "\n") + tokenizer.decode(sequences[i]);
  write_stdout(text);
}

}  // namespace

void register_lm_prepare_commands(CLI::App& lm) {
  auto* prepare = lm.add_subcommand("prepare", "Turn a folder of text into a tokenized corpus: training and "
                                               "held-out documents, a SentencePiece tokenizer trained on the "
                                               "training ones");
  prepare->option_defaults()->always_capture_default();
  auto p = std::make_shared<PrepareCommand>();
  data::CorpusPrepareOptions& o = p->options;
  prepare->add_option("--source", p->source, "Folder of text files, read recursively (.gz decompressed)");
  prepare->add_option("--out,-o", p->out, "Corpus folder to create (must not exist)")->required();
  prepare->add_option("--vocab-size", o.tokenizer.vocab_size, "Tokenizer vocabulary (at most; a small corpus may "
                                                              "give fewer)")
      ->check(CLI::Range(261, 65536));
  prepare->add_option("--model-type", o.tokenizer.model_type, "SentencePiece model type")
      ->check(CLI::IsMember({"bpe", "unigram"}));
  prepare->add_option("--max-sentences", o.tokenizer.max_sentences,
                      "Lines sampled for training the tokenizer (SentencePiece's input_sentence_size)")
      ->check(CLI::PositiveNumber);
  prepare->add_option("--heldout", o.heldout_fraction, "Fraction of the documents held out (whole documents)")
      ->check(CLI::Range(0.0, 1.0));
  prepare->add_option("--seed", o.seed, "Seed of the split and of the tokenizer's sampling");
  prepare->add_option("--min-bytes", o.min_document_bytes, "Files shorter than this are skipped");
  prepare->add_option("--threads", p->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  prepare->callback([p] { run_prepare(*p); });

  auto* tokenize = lm.add_subcommand("tokenize", "Print the token ids of a text under a corpus's tokenizer");
  auto t = std::make_shared<TokenizeCommand>();
  tokenize->add_option("--corpus", t->corpus, "Corpus folder (hax lm prepare)")->required();
  tokenize->add_option("--text", t->text, "Text file, - for stdin")->capture_default_str();
  tokenize->callback([t] { run_tokenize(*t); });

  auto* detokenize = lm.add_subcommand("detokenize", "Print the text of token ids (one sequence a line), or of a "
                                                     "corpus document");
  auto d = std::make_shared<DetokenizeCommand>();
  detokenize->add_option("--corpus", d->corpus, "Corpus folder (hax lm prepare)")->required();
  detokenize->add_option("--ids", d->ids, "File of ids (whitespace-separated, one sequence a line), - for stdin")
      ->capture_default_str();
  detokenize->add_option("--document", d->document, "Print this document of the corpus instead")
      ->check(CLI::NonNegativeNumber);
  detokenize->add_option("--split", d->split, "The document's split: train or valid (default valid)");
  detokenize->callback([d] { run_detokenize(*d); });
}

}  // namespace hax::cli
