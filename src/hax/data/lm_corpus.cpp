#include "hax/data/lm_corpus.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string_view>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "hax/engine/aligned_buffer.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/io/atomic_file.h"
#include "hax/io/hash.h"
#include "hax/io/json_file.h"

namespace hax::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

static_assert(std::endian::native == std::endian::little, "the corpus files are little-endian, read in place");

constexpr const char* kFormat = "hax-lm-corpus";
constexpr int kVersion = 1;
constexpr const char* kTokenizerFile = "tokenizer.model";
// A file with more bytes than this outside valid UTF-8 sequences is binary, not text with a few stray bytes.
constexpr double kMaxInvalidUtf8Fraction = 0.01;
constexpr Split kCorpusSplits[] = {Split::train, Split::valid};

fs::path tokens_path(const fs::path& dir, Split split) { return dir / (std::string(split_name(split)) + ".tokens"); }
fs::path index_path(const fs::path& dir, Split split) { return dir / (std::string(split_name(split)) + ".index"); }

// ---- reading the source ----

std::string read_plain_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path.string(), ": cannot open");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  check(!in.bad(), path.string(), ": cannot read");
  return bytes.str();
}

std::string read_gzip_file(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  check(file != nullptr, path.string(), ": cannot open");
  std::string bytes;
  char chunk[1 << 16];
  int got;
  while ((got = gzread(file, chunk, sizeof chunk)) > 0) bytes.append(chunk, static_cast<std::size_t>(got));
  int code = Z_OK;
  const std::string message = got < 0 ? gzerror(file, &code) : "";
  gzclose(file);
  check(got == 0, path.string(), ": corrupt gzip data (", message, ")");
  return bytes;
}

// The length of the valid UTF-8 sequence starting at text[i], or 0 when none starts there (a stray continuation
// byte, an overlong form, a surrogate, a code point past U+10FFFF, a truncated sequence).
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + length > text.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < length; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  return length;
}

struct TextCheck {
  bool binary = false;
  std::string text;  // the bytes with every invalid one replaced by U+FFFD (when not binary)
};

TextCheck check_text(const std::string& bytes) {
  if (bytes.find('\0') != std::string::npos) return {true, {}};
  TextCheck result;
  result.text.reserve(bytes.size());
  std::uint64_t invalid = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t length = utf8_sequence_length(bytes, i);
    if (length == 0) {
      ++invalid;
      result.text += "\xEF\xBF\xBD";
      ++i;
    } else {
      result.text.append(bytes, i, length);
      i += length;
    }
  }
  result.binary = static_cast<double>(invalid) > kMaxInvalidUtf8Fraction * static_cast<double>(bytes.size());
  return result;
}

struct Document {
  std::string path;  // relative to the source folder
  std::string text;
};

std::vector<fs::path> files_under(const fs::path& source) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(source, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file()) files.push_back(it->path());
  check(!ec, source.string(), ": cannot list the folder: ", ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Document> read_documents(const fs::path& source, const CorpusPrepareOptions& options,
                                     CorpusReport& report,
                                     const std::function<void(std::uint64_t, std::uint64_t)>& on_file) {
  const std::vector<fs::path> files = files_under(source);
  report.files_seen = files.size();
  std::vector<Document> documents;
  io::Hash128Set seen;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const fs::path& file = files[i];
    const std::string bytes = file.extension() == ".gz" ? read_gzip_file(file) : read_plain_file(file);
    TextCheck text = check_text(bytes);
    if (text.binary) {
      ++report.skipped_binary;
    } else if (bytes.size() < options.min_document_bytes) {
      ++report.skipped_short;
    } else if (!seen.insert(io::hash128(bytes.data(), bytes.size()))) {
      ++report.skipped_duplicate;
    } else {
      report.document_bytes += text.text.size();
      documents.push_back({file.lexically_relative(source).generic_string(), std::move(text.text)});
    }
    if (on_file) on_file(i + 1, files.size());
  }
  report.documents = documents.size();
  return documents;
}

// ---- splitting and writing ----

// Indices of the held-out documents, in increasing order: a seeded shuffle picks round(n * fraction) of them, at
// least one and never all.
std::vector<bool> heldout_mask(std::size_t documents, double fraction, std::uint64_t seed) {
  std::vector<std::size_t> order(documents);
  std::iota(order.begin(), order.end(), std::size_t{0});
  Rng rng(seed);
  for (std::size_t i = documents; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  const auto heldout = std::clamp<std::size_t>(static_cast<std::size_t>(std::llround(fraction * documents)), 1,
                                               documents - 1);
  std::vector<bool> mask(documents, false);
  for (std::size_t i = 0; i < heldout; ++i) mask[order[i]] = true;
  return mask;
}

// Every document's ids followed by eos; encoded in parallel (the tokenizer is read-only while encoding).
std::vector<std::vector<std::int32_t>> encode_documents(const Tokenizer& tokenizer,
                                                        const std::vector<const Document*>& documents, int threads) {
  std::vector<std::vector<std::int32_t>> ids(documents.size());
  std::string first_error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (std::size_t i = 0; i < documents.size(); ++i) {
    try {
      ids[i] = tokenizer.encode(documents[i]->text);
      ids[i].push_back(tokenizer.eos_id());
    } catch (const Error& e) {
#pragma omp critical(hax_corpus_encode_error)
      if (first_error.empty()) first_error = documents[i]->path + ": " + e.what();
    }
  }
  check(first_error.empty(), first_error);
  return ids;
}

template <class T>
void write_array(const fs::path& path, const std::vector<T>& values) {
  io::AtomicFile file(path);
  file.stream().write(reinterpret_cast<const char*>(values.data()),
                      static_cast<std::streamsize>(values.size() * sizeof(T)));
  file.commit();
}

struct SplitFiles {
  std::uint64_t documents = 0, tokens = 0;
};

// Writes one split's .tokens and .index, and appends its documents to documents.jsonl.
SplitFiles write_split(const fs::path& dir, Split split, const std::vector<const Document*>& documents,
                       const std::vector<std::vector<std::int32_t>>& ids, std::ostream& listing) {
  std::vector<std::uint16_t> tokens;
  std::vector<std::uint64_t> starts{0};
  for (std::size_t i = 0; i < documents.size(); ++i) {
    for (const std::int32_t id : ids[i]) tokens.push_back(static_cast<std::uint16_t>(id));
    starts.push_back(tokens.size());
    listing << json{{"split", split_name(split)}, {"index", i}, {"path", documents[i]->path},
                    {"bytes", documents[i]->text.size()}, {"tokens", ids[i].size()}}
                   .dump()
            << '\n';
  }
  write_array(tokens_path(dir, split), tokens);
  write_array(index_path(dir, split), starts);
  return {documents.size(), tokens.size()};
}

// Removes a folder unless released: the temporary corpus folder when anything fails before the rename.
class RemoveUnlessReleased {
 public:
  explicit RemoveUnlessReleased(fs::path dir) : dir_(std::move(dir)) {}
  ~RemoveUnlessReleased() {
    std::error_code ignored;
    if (!released_) fs::remove_all(dir_, ignored);
  }
  void release() { released_ = true; }

 private:
  fs::path dir_;
  bool released_ = false;
};

void check_prepare_options(const CorpusPrepareOptions& options) {
  check(options.heldout_fraction > 0 && options.heldout_fraction < 1, "held-out fraction ", options.heldout_fraction,
        " is outside (0, 1)");
}

}  // namespace

CorpusReport prepare_corpus(const fs::path& source, const fs::path& out, const CorpusPrepareOptions& options,
                            const std::function<void(std::uint64_t done, std::uint64_t total)>& on_file) {
  check_prepare_options(options);
  check(fs::is_directory(source), source.string(), ": no such folder");
  fs::path target = fs::absolute(out).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  check(!fs::exists(fs::symlink_status(target)), out.string(), ": exists already (remove it or pick another --out)");

  CorpusReport report;
  std::vector<Document> documents = read_documents(source, options, report, on_file);
  check(documents.size() >= 2, source.string(), ": ", documents.size(), " text document(s) in ", report.files_seen,
        " files (", report.skipped_binary, " binary, ", report.skipped_short, " shorter than ",
        options.min_document_bytes, " bytes, ", report.skipped_duplicate,
        " duplicates): a corpus needs at least 2, one to train on and one held out");

  const std::vector<bool> heldout = heldout_mask(documents.size(), options.heldout_fraction, options.seed);
  std::vector<const Document*> split_documents[2];
  for (std::size_t i = 0; i < documents.size(); ++i) split_documents[heldout[i]].push_back(&documents[i]);

  // Hidden, beside the target (so the final rename stays on one filesystem), and this process's own.
  const fs::path temp = target.parent_path() / cat('.', target.filename().string(), ".tmp-", getpid());
  std::error_code ec;
  fs::remove_all(temp, ec);
  fs::create_directories(temp, ec);
  check(!ec, temp.string(), ": cannot create the folder: ", ec.message());
  RemoveUnlessReleased cleanup(temp);

  std::vector<std::string> training_texts;
  training_texts.reserve(split_documents[0].size());
  for (const Document* d : split_documents[0]) training_texts.push_back(d->text);
  const Tokenizer tokenizer = Tokenizer::train(training_texts, options.tokenizer, temp / kTokenizerFile);
  training_texts = {};

  io::AtomicFile listing(temp / "documents.jsonl");
  SplitFiles written[2];
  for (const Split split : kCorpusSplits) {
    const auto& docs = split_documents[split == Split::valid];
    written[split == Split::valid] =
        write_split(temp, split, docs, encode_documents(tokenizer, docs, options.tokenizer.threads), listing.stream());
  }
  listing.commit();
  report.train_documents = written[0].documents, report.train_tokens = written[0].tokens;
  report.valid_documents = written[1].documents, report.valid_tokens = written[1].tokens;

  const TokenizerTrainOptions& t = options.tokenizer;
  io::write_json_file(
      temp / "corpus.json",
      {{"format", kFormat}, {"version", kVersion}, {"vocab_size", tokenizer.vocab_size()},
       {"tokenizer", kTokenizerFile}, {"tokenizer_sha256", tokenizer.fingerprint()},
       {"tokenizer_options", {{"model_type", t.model_type}, {"vocab_size", t.vocab_size},
                              {"character_coverage", t.character_coverage}, {"max_sentences", t.max_sentences},
                              {"seed", t.seed}}},
       {"source", fs::absolute(source).lexically_normal().string()}, {"heldout_fraction", options.heldout_fraction},
       {"seed", options.seed}, {"min_document_bytes", options.min_document_bytes},
       {"splits", {{"train", {{"documents", report.train_documents}, {"tokens", report.train_tokens}}},
                   {"valid", {{"documents", report.valid_documents}, {"tokens", report.valid_tokens}}}}},
       {"report", {{"files_seen", report.files_seen}, {"documents", report.documents},
                   {"document_bytes", report.document_bytes}, {"skipped_binary", report.skipped_binary},
                   {"skipped_short", report.skipped_short}, {"skipped_duplicate", report.skipped_duplicate}}}});

  fs::rename(temp, target, ec);
  check(!ec, out.string(), ": cannot move the finished corpus into place: ", ec.message());
  cleanup.release();
  return report;
}

// ---- reading a corpus ----

namespace {

const json& member(const json& j, const char* key, const std::string& where) {
  check(j.is_object() && j.contains(key), where, ": missing \"", key, "\"");
  return j.at(key);
}

std::uint64_t count_member(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  check(v.is_number_unsigned(), where, ": \"", key, "\" must be a non-negative integer, got ", v.dump());
  return v.get<std::uint64_t>();
}

std::string string_member(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  check(v.is_string(), where, ": \"", key, "\" must be a string, got ", v.dump());
  return v.get<std::string>();
}

// A whole file, mapped read-only, after checking that it holds exactly `count` values of T.
template <class T>
std::span<const T> map_array(const fs::path& path, std::uint64_t count, AlignedBuffer& mapping) {
  std::error_code ec;
  const std::uintmax_t bytes = fs::file_size(path, ec);
  check(!ec, path.string(), ": cannot read: ", ec.message());
  check(count <= UINT64_MAX / sizeof(T) && bytes == count * sizeof(T), path.string(), ": ", bytes,
        " bytes, but corpus.json says ", count, " values of ", sizeof(T), " bytes");
  mapping = AlignedBuffer::map_file(path.string(), 0, 0);
  const std::span<const char> whole = mapping.mapped_file();
  return {reinterpret_cast<const T*>(whole.data()), static_cast<std::size_t>(count)};
}

}  // namespace

struct LmCorpus::Impl {
  struct SplitData {
    AlignedBuffer token_mapping, index_mapping;
    std::span<const std::uint16_t> tokens;
    std::span<const std::uint64_t> starts;
  };

  fs::path dir;
  Tokenizer tokenizer;
  SplitData splits[2];

  const SplitData& split(Split s) const {
    check(s != Split::test, dir.string(), ": a corpus has train and valid splits, no test split");
    return splits[s == Split::valid];
  }

  // Maps a split's files and checks the index (0 first, increasing, the token count last), that every document
  // ends with eos, and that every id is inside the vocabulary.
  void open_split(Split s, const json& counts, const std::string& where) {
    SplitData& d = splits[s == Split::valid];
    const std::uint64_t documents = count_member(counts, "documents", where);
    const std::uint64_t tokens = count_member(counts, "tokens", where);
    check(documents >= 1 && documents < UINT64_MAX, where, ": the ", split_name(s),
          " split must hold at least one document");
    const fs::path tokens_file = tokens_path(dir, s), index_file = index_path(dir, s);
    d.tokens = map_array<std::uint16_t>(tokens_file, tokens, d.token_mapping);
    d.starts = map_array<std::uint64_t>(index_file, documents + 1, d.index_mapping);
    check(d.starts.front() == 0, index_file.string(), ": the first document starts at ", d.starts.front(),
          ", not 0");
    check(d.starts.back() == tokens, index_file.string(), ": the last offset is ", d.starts.back(), ", not the ",
          tokens, " tokens of ", tokens_file.string());
    const int eos = tokenizer.eos_id();
    for (std::uint64_t i = 0; i < documents; ++i) {
      check(d.starts[i] < d.starts[i + 1], index_file.string(), ": document ", i + 1, " starts at ", d.starts[i + 1],
            ", not after document ", i, "'s start ", d.starts[i], " (offsets must increase)");
      check(d.starts[i + 1] <= tokens, index_file.string(), ": document ", i, " ends at ", d.starts[i + 1],
            ", past the ", tokens, " tokens");
      check(d.tokens[d.starts[i + 1] - 1] == eos, tokens_file.string(), ": document ", i,
            " does not end with the eos id ", eos);
    }
    const int vocab = tokenizer.vocab_size();
    const auto bad = std::find_if(d.tokens.begin(), d.tokens.end(), [vocab](std::uint16_t id) { return id >= vocab; });
    check(bad == d.tokens.end(), tokens_file.string(), ": token ", bad - d.tokens.begin(), " is id ",
          bad == d.tokens.end() ? 0 : *bad, ", outside the vocabulary of ", vocab);
  }
};

LmCorpus::LmCorpus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LmCorpus::LmCorpus(LmCorpus&&) noexcept = default;
LmCorpus& LmCorpus::operator=(LmCorpus&&) noexcept = default;
LmCorpus::~LmCorpus() = default;

LmCorpus LmCorpus::open(const fs::path& dir) {
  check(fs::is_directory(dir), dir.string(), ": no such corpus folder (make one with `hax lm prepare`)");
  const fs::path config_path = dir / "corpus.json";
  check(fs::is_regular_file(config_path), config_path.string(), ": missing (not a corpus folder?)");
  const std::string where = config_path.string();
  const json config = io::read_json_file(config_path);
  check(config.is_object(), where, ": not a JSON object");
  check(string_member(config, "format", where) == kFormat, where, ": \"format\" is not \"", kFormat, "\"");
  const std::uint64_t version = count_member(config, "version", where);
  check(version == kVersion, where, ": version ", version, " (this hax reads version ", kVersion, ")");
  const std::uint64_t vocab = count_member(config, "vocab_size", where);
  check(vocab >= 1 && vocab <= kMaxVocab, where, ": vocab_size ", vocab, " is outside [1, ", kMaxVocab, "]");
  const std::string tokenizer_name = string_member(config, "tokenizer", where);
  check(!tokenizer_name.empty() && fs::path(tokenizer_name).filename() == tokenizer_name, where,
        ": \"tokenizer\" must name a file in the corpus folder, got '", tokenizer_name, "'");
  const fs::path tokenizer_path = dir / tokenizer_name;
  Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  const std::string expected = string_member(config, "tokenizer_sha256", where);
  check(tokenizer.fingerprint() == expected, tokenizer_path.string(), ": SHA-256 ", tokenizer.fingerprint(),
        " differs from the tokenizer_sha256 ", expected, " in ", where,
        ": this tokenizer did not make these token files");
  check(static_cast<std::uint64_t>(tokenizer.vocab_size()) == vocab, where, ": vocab_size ", vocab, " but ",
        tokenizer_path.string(), " has ", tokenizer.vocab_size(), " pieces");

  auto impl = std::unique_ptr<Impl>(new Impl{dir, std::move(tokenizer), {}});
  const json& splits = member(config, "splits", where);
  for (const Split s : kCorpusSplits)
    impl->open_split(s, member(splits, std::string(split_name(s)).c_str(), where),
                     where + " splits." + std::string(split_name(s)));
  return LmCorpus(std::move(impl));
}

const fs::path& LmCorpus::dir() const { return impl_->dir; }
const Tokenizer& LmCorpus::tokenizer() const { return impl_->tokenizer; }
int LmCorpus::vocab_size() const { return impl_->tokenizer.vocab_size(); }
std::span<const std::uint16_t> LmCorpus::tokens(Split split) const { return impl_->split(split).tokens; }
std::span<const std::uint64_t> LmCorpus::document_starts(Split split) const { return impl_->split(split).starts; }
std::uint64_t LmCorpus::documents(Split split) const { return impl_->split(split).starts.size() - 1; }

std::span<const std::uint16_t> LmCorpus::document(Split split, std::uint64_t index) const {
  const Impl::SplitData& d = impl_->split(split);
  check(index + 1 < d.starts.size(), dir().string(), ": document ", index, " of the ", split_name(split),
        " split is out of range (it has ", d.starts.size() - 1, ")");
  return d.tokens.subspan(d.starts[index], d.starts[index + 1] - d.starts[index]);
}

}  // namespace hax::data
