#include "hax/io/npy.h"

#include <bit>
#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include "hax/engine/error.h"
#include "hax/engine/params.h"
#include "hax/io/atomic_file.h"

namespace hax::io {
namespace {

static_assert(std::endian::native == std::endian::little, "'<f4' and '<i4' are read and written in host order");

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicBytes = 6;
constexpr std::size_t kAlignment = 64;  // numpy pads the header so that the data starts on a 64-byte boundary

template <class... Parts>
[[noreturn]] void bad_file(const std::filesystem::path& path, const Parts&... parts) {
  fail("npy file '", path.string(), "': ", parts...);
}

template <class T>
constexpr const char* descr_of() {
  return std::is_same_v<T, float> ? "<f4" : "<i4";
}

// The header dict as numpy writes it: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".
std::string header_dict(const char* descr, const std::vector<std::int64_t>& shape) {
  std::string dims;
  for (std::int64_t d : shape) dims += cat(d, ", ");
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // "(2, 3)"; a 1-D shape keeps its comma: "(5,)"
  if (shape.size() == 1) dims.pop_back();
  return cat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (", dims, "), }");
}

template <class T>
void save(const std::filesystem::path& path, std::span<const T> values, const std::vector<std::int64_t>& shape) {
  check(values.size() == shape_numel(shape), "cannot write npy file '", path.string(), "': ", values.size(),
        " values for shape ", shape_string(shape));
  std::string header = header_dict(descr_of<T>(), shape);
  const std::size_t unpadded = kMagicBytes + 4 + header.size() + 1;  // magic, version, length, dict, '\n'
  header.append((kAlignment - unpadded % kAlignment) % kAlignment, ' ');
  header += '\n';
  check(header.size() <= 0xffff, "cannot write npy file '", path.string(), "': shape too long for format 1.0");
  AtomicFile file(path);
  std::ostream& out = file.stream();
  const std::uint16_t length = static_cast<std::uint16_t>(header.size());
  out.write(kMagic, kMagicBytes);
  out.put(1).put(0);  // format version 1.0
  out.put(static_cast<char>(length & 0xff)).put(static_cast<char>(length >> 8));
  out << header;
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
  file.commit();
}

// A reader for the Python literal of the header: a dict of strings, booleans and tuples of integers.
class HeaderParser {
 public:
  HeaderParser(const std::filesystem::path& path, const std::string& text) : path_(path), text_(text) {}

  NpyHeader parse() {
    std::map<std::string, bool> seen;
    NpyHeader header;
    bool fortran_order = false;
    expect('{');
    while (!peek_is('}')) {
      const std::string key = string_literal();
      if (seen[key]) malformed("key '" + key + "' twice");
      seen[key] = true;
      expect(':');
      if (key == "descr") {
        header.descr = string_literal();
      } else if (key == "fortran_order") {
        fortran_order = boolean();
      } else if (key == "shape") {
        header.shape = integer_tuple();
      } else {
        malformed("unexpected key '" + key + "'");
      }
      if (!peek_is('}')) expect(',');
    }
    expect('}');
    skip_spaces();
    if (pos_ != text_.size()) malformed("text after the dict");
    if (!seen["descr"] || !seen["fortran_order"] || !seen["shape"])
      malformed("it needs 'descr', 'fortran_order' and 'shape'");
    if (fortran_order) bad_file(path_, "Fortran-order arrays are not supported");
    return header;
  }

 private:
  [[noreturn]] void malformed(const std::string& why) { bad_file(path_, "malformed header (", why, "): ", text_); }

  void skip_spaces() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool peek_is(char c) {
    skip_spaces();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!peek_is(c)) malformed(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    skip_spaces();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) malformed("expected a string");
    const char quote = text_[pos_++];
    const std::size_t end = text_.find(quote, pos_);
    if (end == std::string::npos) malformed("unterminated string");
    std::string s = text_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    skip_spaces();
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      if (text_.compare(pos_, std::strlen(word), word) == 0) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    malformed("expected True or False");
  }
  std::vector<std::int64_t> integer_tuple() {
    std::vector<std::int64_t> values;
    expect('(');
    while (!peek_is(')')) {
      std::size_t digits = 0;
      std::int64_t value = 0;
      for (; pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])); ++pos_, ++digits) {
        if (value > (std::int64_t(1) << 55)) malformed("dimension too large");
        value = value * 10 + (text_[pos_] - '0');
      }
      if (digits == 0) malformed("expected a non-negative integer");
      values.push_back(value);
      if (!peek_is(')')) expect(',');
    }
    expect(')');
    return values;
  }

  const std::filesystem::path& path_;
  const std::string& text_;
  std::size_t pos_ = 0;
};

std::uint64_t size_of_file(const std::filesystem::path& path) {
  std::error_code error;
  const std::uint64_t size = std::filesystem::file_size(path, error);
  if (error) bad_file(path, "cannot read: ", error.message());
  return size;
}

std::size_t checked_numel(const std::filesystem::path& path, const std::vector<std::int64_t>& shape) {
  try {
    return shape_numel(shape);
  } catch (const Error& e) {
    bad_file(path, e.what());
  }
}

// Reads `bytes` bytes at the stream's position, or fails naming what was read.
void read_exactly(std::ifstream& in, const std::filesystem::path& path, void* to, std::size_t bytes, const char* what) {
  if (bytes == 0) return;  // `to` may be the null data() of an empty vector
  in.read(static_cast<char*>(to), static_cast<std::streamsize>(bytes));
  if (!in || static_cast<std::size_t>(in.gcount()) != bytes) bad_file(path, "file ends inside the ", what);
}

}  // namespace

void save_npy(const std::filesystem::path& path, std::span<const float> values,
              const std::vector<std::int64_t>& shape) {
  save(path, values, shape);
}
void save_npy(const std::filesystem::path& path, std::span<const std::int32_t> values,
              const std::vector<std::int64_t>& shape) {
  save(path, values, shape);
}

NpyHeader read_npy_header(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_file(path, "cannot open");
  unsigned char preamble[kMagicBytes + 2];
  read_exactly(in, path, preamble, sizeof preamble, "magic string");
  if (std::memcmp(preamble, kMagic, kMagicBytes) != 0) bad_file(path, "not a .npy file (no \\x93NUMPY magic)");
  const int major = preamble[kMagicBytes], minor = preamble[kMagicBytes + 1];
  if (major < 1 || major > 3 || minor != 0) bad_file(path, "unsupported format version ", major, ".", minor);
  // Version 1.0 has a 2-byte header length, 2.0 and 3.0 a 4-byte one; all little-endian.
  unsigned char length_bytes[4] = {};
  const std::size_t length_size = major == 1 ? 2 : 4;
  read_exactly(in, path, length_bytes, length_size, "header length");
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < length_size; ++i) length |= std::uint64_t(length_bytes[i]) << (8 * i);
  const std::uint64_t header_end = kMagicBytes + 2 + length_size + length;
  if (header_end > size_of_file(path))
    bad_file(path, "header length ", length, " runs past the end of the file (", size_of_file(path), " bytes)");
  std::string text(length, '\0');
  read_exactly(in, path, text.data(), length, "header");
  NpyHeader header = HeaderParser(path, text).parse();
  header.data_offset = kMagicBytes + 2 + length_size + length;
  return header;
}

template <class T>
NpyArray<T> load_npy(const std::filesystem::path& path) {
  const NpyHeader header = read_npy_header(path);
  if (header.descr != descr_of<T>()) bad_file(path, "dtype '", header.descr, "', expected '", descr_of<T>(), "'");
  // Sizes are checked before anything is allocated: a short file's header may claim any shape.
  const std::size_t numel = checked_numel(path, header.shape);
  const std::uint64_t have = size_of_file(path) - header.data_offset;
  const bool short_file = numel > have / sizeof(T);
  if (short_file || have != numel * sizeof(T))
    bad_file(path, "shape ", shape_string(header.shape), " of ", header.descr, " needs ",
             numel > std::numeric_limits<std::uint64_t>::max() / sizeof(T) ? std::string("over 2^64")
                                                                            : std::to_string(numel * sizeof(T)),
             " bytes of data, the file has ", have, short_file ? " (truncated?)" : "");
  NpyArray<T> array{header.shape, std::vector<T>(numel)};
  const std::uint64_t want = numel * sizeof(T);
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(header.data_offset));
  read_exactly(in, path, array.values.data(), want, "data");
  return array;
}

template NpyArray<float> load_npy<float>(const std::filesystem::path&);
template NpyArray<std::int32_t> load_npy<std::int32_t>(const std::filesystem::path&);

}  // namespace hax::io
