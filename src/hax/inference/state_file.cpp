#include "hax/inference/state_file.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include <nlohmann/json.hpp>

#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"
#include "hax/io/hash.h"

namespace hax::inference {
namespace {

static_assert(std::endian::native == std::endian::little, "state files are little-endian");

constexpr char kMagic[8] = {'H', 'A', 'X', 'S', 'T', 'A', 'T', 'E'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kPreamble = sizeof kMagic + 4 + 4 + 8;
constexpr std::uint64_t kMaxHeader = 1 << 20;

std::string hex(std::uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

// ---- writing ----

struct Writer {
  std::string bytes;
  template <class T>
  void value(const T& x) {
    bytes.append(reinterpret_cast<const char*>(&x), sizeof x);
  }
  template <class T>
  void raw(const T* data, std::size_t n) {
    bytes.append(reinterpret_cast<const char*>(data), n * sizeof(T));
  }
  template <class T>
  void array(const std::vector<T>& v) {
    value(std::uint64_t(v.size()));
    raw(v.data(), v.size());
  }
};

void write_sparse(Writer& w, const layers::SparseState& s) {
  const ops::sparse::SparseKeyStream::Snapshot keys = s.keys.snapshot();
  w.value(keys.position);
  w.array(keys.sign_bin_slots);
  w.array(keys.sign_bin_inserted);
  w.array(keys.argmax_slots);
  w.array(keys.argmax_inserted);
  w.value(std::uint64_t(keys.top.size()));
  for (const auto& e : keys.top) w.value(e.score), w.value(e.s);
  const int K = s.cache.key_width(), V = s.cache.value_width();
  w.value(std::int32_t(K));
  w.value(std::int32_t(V));
  const std::vector<std::int32_t> held = s.cache.positions();
  w.value(std::uint64_t(held.size()));
  for (const std::int32_t p : held) {
    w.value(p);
    w.value(std::int32_t(s.cache.holds_of(p)));
    w.raw(s.cache.key_of(p), std::size_t(K));
    w.raw(s.cache.value_of(p), std::size_t(V));
  }
  w.array(s.query_sum);
  w.array(s.lsh_sums);
}

std::string body_of(const SavedStream& s) {
  Writer w;
  w.array(s.next_logits);
  if (s.rng) {
    w.value(s.rng->seed);
    w.raw(s.rng->s, 4);
    w.value(std::uint8_t(s.rng->has_spare));
    w.value(s.rng->spare);
  }
  for (const layers::MixerState& b : s.state.blocks) {
    w.array(b.conv_tail);
    w.array(b.h);
    w.array(b.window_k);
    w.array(b.window_v);
    w.value(std::int32_t(b.position));
    w.value(std::uint8_t(b.sparse.has_value()));
    if (b.sparse) write_sparse(w, *b.sparse);
  }
  return std::move(w.bytes);
}

// ---- reading ----

// Bounds-checked reads of the body; every failure names the file.
class Reader {
 public:
  Reader(const std::string& path, const char* data, std::size_t size) : path_(path), at_(data), end_(data + size) {}

  template <class T>
  T value(const char* what) {
    T x;
    take(&x, sizeof x, what);
    return x;
  }
  template <class T>
  void raw(T* out, std::size_t n, const char* what) {
    take(out, n * sizeof(T), what);
  }
  // An array whose count must be `expected` (or anything up to what the file holds, when expected < 0).
  template <class T>
  std::vector<T> array(const char* what, std::int64_t expected = -1) {
    const std::uint64_t n = value<std::uint64_t>(what);
    if (expected >= 0) fail_if(n != std::uint64_t(expected), what, ": ", n, " values, the model has ", expected);
    fail_if(n > left() / sizeof(T), what, ": ", n, " values, more than the file holds (truncated?)");
    std::vector<T> v(n);
    raw(v.data(), n, what);
    return v;
  }
  std::size_t left() const { return std::size_t(end_ - at_); }

  template <class... Parts>
  void fail_if(bool bad, const Parts&... parts) const {
    if (bad) fail("state file '", path_, "': ", parts...);
  }

 private:
  void take(void* out, std::size_t n, const char* what) {
    fail_if(n > left(), "ends inside ", what, " (truncated)");
    if (n) std::memcpy(out, at_, n);
    at_ += n;
  }
  const std::string& path_;
  const char* at_;
  const char* end_;
};

void read_sparse(Reader& r, layers::SparseState& s, int position) {
  ops::sparse::SparseKeyStream::Snapshot keys;
  const ops::sparse::SparseKeyStream::Snapshot shape = s.keys.snapshot();
  keys.position = r.value<std::int32_t>("key stream position");
  r.fail_if(keys.position != position, "key stream at position ", keys.position, ", the model at ", position);
  keys.sign_bin_slots = r.array<std::int32_t>("sign-bin rings", std::int64_t(shape.sign_bin_slots.size()));
  keys.sign_bin_inserted = r.array<std::int64_t>("sign-bin counters", std::int64_t(shape.sign_bin_inserted.size()));
  keys.argmax_slots = r.array<std::int32_t>("argmax rings", std::int64_t(shape.argmax_slots.size()));
  keys.argmax_inserted = r.array<std::int64_t>("argmax counters", std::int64_t(shape.argmax_inserted.size()));
  const std::uint64_t top = r.value<std::uint64_t>("top-w size");
  r.fail_if(top > std::uint64_t(s.keys.arch().budget), "top-w set of ", top, " keys, at most ", s.keys.arch().budget);
  for (std::uint64_t i = 0; i < top; ++i) {
    const float score = r.value<float>("top-w set");
    keys.top.push_back({score, r.value<std::int32_t>("top-w set")});
  }
  try {
    s.keys.restore(std::move(keys));
  } catch (const Error& e) {
    r.fail_if(true, e.what());
  }
  const int K = r.value<std::int32_t>("cache widths"), V = r.value<std::int32_t>("cache widths");
  r.fail_if(K != s.cache.key_width() || V != s.cache.value_width(), "key-value cache rows of ", K, " and ", V,
            " floats, the model's are ", s.cache.key_width(), " and ", s.cache.value_width());
  // The cache must hold exactly what the key stream holds, as often.
  const std::uint64_t held = r.value<std::uint64_t>("cache size");
  const std::size_t row = 8 + 4 * (std::size_t(K) + std::size_t(V));
  r.fail_if(held > r.left() / row, "key-value cache of ", held, " positions, more than the file holds (truncated?)");
  const ops::sparse::SparseKeyStream::Held expected = s.keys.held(std::size_t(held));
  r.fail_if(held != expected.positions.size(), "key-value cache of ", held, " positions, the key stream holds ",
            expected.positions.size() > held ? "more" : std::to_string(expected.positions.size()));
  std::vector<float> key(static_cast<std::size_t>(K)), value(static_cast<std::size_t>(V));
  for (std::uint64_t i = 0; i < held; ++i) {
    const std::int32_t p = r.value<std::int32_t>("cache position");
    const std::int32_t h = r.value<std::int32_t>("cache holds");
    r.fail_if(p != expected.positions[i] || h != expected.holds[i], "key-value cache entry ", i, " is position ", p,
              " held ", h, " times, the key stream holds position ", expected.positions[i], " ", expected.holds[i],
              " times");
    r.raw(key.data(), key.size(), "cache keys");
    r.raw(value.data(), value.size(), "cache values");
    s.cache.restore(p, key.data(), value.data(), h);
  }
  s.query_sum = r.array<double>("query sums", std::int64_t(s.query_sum.size()));
  s.lsh_sums = r.array<double>("LSH sums", std::int64_t(s.lsh_sums.size()));
}

}  // namespace

void save_state_file(const std::string& path, const StateShape& shape, const SavedStream& stream) {
  const std::string body = body_of(stream);
  const nlohmann::json header{{"format", "hax streaming state"},
                              {"config", shape.config},
                              {"weights_hash", hex(shape.weights_hash)},
                              {"position", stream.state.position},
                              {"vocab_size", shape.vocab_size},
                              {"blocks", stream.state.blocks.size()},
                              {"has_rng", stream.rng.has_value()},
                              {"body_bytes", body.size()},
                              {"body_hash", hex(io::hash64(body.data(), body.size()))}};
  const std::string text = header.dump();
  io::AtomicFile file(path);
  std::ostream& out = file.stream();
  out.write(kMagic, sizeof kMagic);
  const std::uint32_t version = kVersion, zero = 0;
  const std::uint64_t header_bytes = text.size();
  out.write(reinterpret_cast<const char*>(&version), 4);
  out.write(reinterpret_cast<const char*>(&zero), 4);
  out.write(reinterpret_cast<const char*>(&header_bytes), 8);
  out.write(text.data(), std::streamsize(text.size()));
  out.write(body.data(), std::streamsize(body.size()));
  file.commit();
}

SavedStream load_state_file(const std::string& path, const StateShape& shape) {
  std::ifstream in(path, std::ios::binary);
  check(bool(in), "cannot open state file '", path, "'");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check(!in.bad(), "cannot read state file '", path, "'");
  Reader pre(path, bytes.data(), bytes.size());
  char magic[8];
  pre.raw(magic, 8, "the magic");
  pre.fail_if(std::memcmp(magic, kMagic, 8) != 0, "not a hax state file (bad magic)");
  const auto version = pre.value<std::uint32_t>("the version");
  pre.fail_if(version != kVersion, "format version ", version, ", this hax reads version ", kVersion);
  (void)pre.value<std::uint32_t>("the preamble");
  const auto header_bytes = pre.value<std::uint64_t>("the header size");
  pre.fail_if(header_bytes > kMaxHeader || header_bytes > pre.left(), "header of ", header_bytes,
              " bytes, the file holds ", pre.left(), " after the preamble (truncated?)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.data() + kPreamble, bytes.data() + kPreamble + header_bytes);
  } catch (const nlohmann::json::exception&) {
    pre.fail_if(true, "the header is not valid JSON");
  }
  const std::string body = bytes.substr(kPreamble + header_bytes);
  std::int64_t position = 0, blocks = 0, body_bytes = 0;
  bool has_rng = false;
  std::string weights, body_hash;
  try {
    pre.fail_if(header.at("config") != shape.config, "saved by another model or config than this checkpoint's");
    weights = header.at("weights_hash").get<std::string>();
    position = header.at("position").get<std::int64_t>();
    blocks = header.at("blocks").get<std::int64_t>();
    has_rng = header.at("has_rng").get<bool>();
    body_bytes = header.at("body_bytes").get<std::int64_t>();
    body_hash = header.at("body_hash").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    pre.fail_if(true, "bad header: ", e.what());
  }
  pre.fail_if(weights != hex(shape.weights_hash), "saved with other weights than this checkpoint's");
  pre.fail_if(body_bytes != std::int64_t(body.size()), "body of ", body.size(), " bytes, the header says ",
              body_bytes, body.size() < std::uint64_t(std::max<std::int64_t>(body_bytes, 0)) ? " (truncated)" : "");
  pre.fail_if(position < 0 || position > std::numeric_limits<std::int32_t>::max(), "bad position ", position);
  pre.fail_if(blocks != std::int64_t(shape.start.blocks.size()), blocks, " blocks, the model has ",
              shape.start.blocks.size());
  pre.fail_if(shape.attention.size() != shape.start.blocks.size(), "bad state shape");

  SavedStream s{shape.start, {}, {}};  // the shapes to fill
  s.state.position = int(position);
  Reader r(path, body.data(), body.size());
  s.next_logits = r.array<float>("next-token logits", position > 0 ? shape.vocab_size : 0);
  if (has_rng) {
    Rng::State rng;
    rng.seed = r.value<std::uint64_t>("generator state");
    r.raw(rng.s, 4, "generator state");
    rng.has_spare = r.value<std::uint8_t>("generator state") != 0;
    rng.spare = r.value<double>("generator state");
    r.fail_if((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0, "generator state is all zeros");
    s.rng = rng;
  }
  for (std::size_t i = 0; i < s.state.blocks.size(); ++i) {
    layers::MixerState& b = s.state.blocks[i];
    b.conv_tail = r.array<float>("conv tail", std::int64_t(b.conv_tail.size()));
    b.h = r.array<float>("scan state", std::int64_t(b.h.size()));
    const bool attention = shape.attention[i] != 0;
    const std::int64_t window =
        attention ? std::min<std::int64_t>(position, shape.attn_window - 1) * std::int64_t(shape.hidden_size) : 0;
    b.window_k = r.array<float>("attention keys", window);
    b.window_v = r.array<float>("attention values", window);
    b.position = r.value<std::int32_t>("attention position");
    r.fail_if(b.position != (attention ? position : 0), "block ", i, " at position ", b.position);
    const bool sparse = r.value<std::uint8_t>("sparse flag") != 0;
    r.fail_if(sparse != b.sparse.has_value(), "block ", i, sparse ? " has" : " lacks", " a sparse branch");
    if (b.sparse) read_sparse(r, *b.sparse, int(position));
  }
  r.fail_if(r.left() != 0, r.left(), " bytes after the last block");
  r.fail_if(hex(io::hash64(body.data(), body.size())) != body_hash, "the body does not match its hash (altered)");
  return s;
}

}  // namespace hax::inference
