#include "hax/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <unordered_set>

#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"

namespace hax::io {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian, as this host must be");

// The format's own limit: a larger header is taken as a corrupt length.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

// Bytes per element of every dtype the format defines; 0 for a name it does not define.
int dtype_bytes(const std::string& dtype) {
  static const std::unordered_map<std::string, int> kBytes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto it = kBytes.find(dtype);
  return it == kBytes.end() ? 0 : it->second;
}

template <class... Parts>
[[noreturn]] void bad_file(const std::filesystem::path& path, const Parts&... parts) {
  fail("safetensors file '", path.string(), "': ", parts...);
}

std::string range_string(std::uint64_t begin, std::uint64_t end) { return cat("[", begin, ", ", end, ")"); }

float bf16_to_float(std::uint16_t bits) { return std::bit_cast<float>(std::uint32_t(bits) << 16); }

float f16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = std::uint32_t(bits & 0x8000) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

// Parses the header, rejecting duplicate names (which nlohmann::json would silently merge).
nlohmann::json parse_header(const std::filesystem::path& path, const std::string& text) {
  std::unordered_set<std::string> seen;
  std::string duplicate;
  const auto note_top_level_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, note_top_level_keys);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number too large
    bad_file(path, "invalid JSON header: ", e.what());
  }
  if (!duplicate.empty()) bad_file(path, "tensor '", duplicate, "' appears twice in the header");
  if (!header.is_object()) bad_file(path, "the header is not a JSON object");
  return header;
}

SafetensorsMetadata parse_metadata(const std::filesystem::path& path, const nlohmann::json& value) {
  if (!value.is_object()) bad_file(path, "\"", kMetadataKey, "\" is not an object");
  SafetensorsMetadata metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) bad_file(path, "metadata '", key, "' is not a string");
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// A JSON array of non-negative integers, or nothing.
std::optional<std::vector<std::uint64_t>> unsigned_array(const nlohmann::json& value) {
  if (!value.is_array()) return std::nullopt;
  std::vector<std::uint64_t> numbers;
  for (const auto& item : value) {
    if (!item.is_number_unsigned() && !(item.is_number_integer() && item.get<std::int64_t>() >= 0)) return std::nullopt;
    numbers.push_back(item.get<std::uint64_t>());
  }
  return numbers;
}

void write_u64_le(std::ostream& out, std::uint64_t value) {
  char bytes[8];
  std::memcpy(bytes, &value, 8);
  out.write(bytes, 8);
}

}  // namespace

// ---- writing ----

void save_safetensors(const std::filesystem::path& path, std::span<const TensorView> tensors,
                      const SafetensorsMetadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::unordered_set<std::string> names;
  std::uint64_t offset = 0;
  for (const TensorView& t : tensors) {
    const auto where = [&] { return cat("cannot write safetensors file '", path.string(), "': "); };
    check(!t.name.empty() && t.name != kMetadataKey, where(), "bad tensor name '", t.name, "'");
    check(names.insert(t.name).second, where(), "tensor '", t.name, "' given twice");
    const std::size_t numel = shape_numel(t.shape);
    check(t.values.size() == numel, where(), "tensor '", t.name, "' has ", t.values.size(), " values for shape ",
          shape_string(t.shape));
    const std::uint64_t end = offset + numel * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  // The data starts 64-byte aligned (the reference writer aligns to 8): a reader can then map the file and use its
  // floats in place, as load_params does.
  text.append((kDataAlignBytes - (8 + text.size()) % kDataAlignBytes) % kDataAlignBytes, ' ');
  AtomicFile file(path);
  std::ostream& out = file.stream();
  write_u64_le(out, text.size());
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const TensorView& t : tensors)
    out.write(reinterpret_cast<const char*>(t.values.data()), static_cast<std::streamsize>(t.values.size_bytes()));
  file.commit();
}

void save_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                      const SafetensorsMetadata& metadata) {
  std::vector<TensorView> views;
  for (const TensorData& t : tensors) views.push_back({t.name, t.shape, t.values});
  save_safetensors(path, views, metadata);
}

// ---- reading ----

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  std::error_code error;
  const std::uint64_t file_size = std::filesystem::file_size(path, error);
  if (error) bad_file(path, "cannot read: ", error.message());
  in_.open(path, std::ios::binary);
  if (!in_) bad_file(path, "cannot open");
  if (file_size < 8) bad_file(path, "only ", file_size, " bytes, too short for the 8-byte header length");
  std::uint64_t header_size = 0;
  char length_bytes[8];
  in_.read(length_bytes, 8);
  std::memcpy(&header_size, length_bytes, 8);
  if (header_size > file_size - 8)
    bad_file(path, "header length ", header_size, " larger than the file (", file_size, " bytes)");
  if (header_size > kMaxHeaderBytes) bad_file(path, "header length ", header_size, " over the format's 100 MB limit");
  std::string text(header_size, '\0');
  in_.read(text.data(), static_cast<std::streamsize>(header_size));
  if (!in_) bad_file(path, "cannot read the header");
  data_start_ = 8 + header_size;
  parse_entries(parse_header(path, text), file_size - data_start_);
}

void SafetensorsFile::parse_entries(const nlohmann::json& header, std::uint64_t data_size) {
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      metadata_ = parse_metadata(path_, value);
      continue;
    }
    entries_.emplace(name, parse_entry(name, value, data_size));
    names_.push_back(name);
  }
  check_coverage(data_size);
}

SafetensorsFile::Entry SafetensorsFile::parse_entry(const std::string& name, const nlohmann::json& value,
                                                    std::uint64_t data_size) const {
  const auto bad = [&](const auto&... parts) { bad_file(path_, "tensor '", name, "': ", parts...); };
  if (name.empty()) bad_file(path_, "a tensor has an empty name");
  if (!value.is_object()) bad("not a JSON object");
  if (!value.contains("dtype") || !value["dtype"].is_string()) bad("no \"dtype\" string");
  if (!value.contains("shape")) bad("no \"shape\"");
  if (!value.contains("data_offsets")) bad("no \"data_offsets\"");
  Entry e;
  e.dtype = value["dtype"].get<std::string>();
  const int element_bytes = dtype_bytes(e.dtype);
  if (element_bytes == 0) bad("unknown dtype '", e.dtype, "'");
  const auto shape = unsigned_array(value["shape"]);
  if (!shape) bad("\"shape\" is not an array of non-negative integers");
  const auto offsets = unsigned_array(value["data_offsets"]);
  if (!offsets || offsets->size() != 2 || (*offsets)[0] > (*offsets)[1])
    bad("\"data_offsets\" is not [begin, end] with 0 <= begin <= end");
  e.begin = (*offsets)[0], e.end = (*offsets)[1];
  e.numel = 1;
  for (std::uint64_t d : *shape) {
    // Past 2^62 bytes no file can hold it; stopping there keeps the product from overflowing.
    if (d != 0 && e.numel > (std::uint64_t(1) << 62) / element_bytes / d) bad("shape too large");
    e.numel *= d;
    e.shape.push_back(static_cast<std::int64_t>(d));
  }
  const std::uint64_t bytes = e.numel * element_bytes;
  if (e.end - e.begin != bytes)
    bad("shape ", shape_string(e.shape), " of ", e.dtype, " needs ", bytes, " bytes but data_offsets ",
        range_string(e.begin, e.end), " hold ", e.end - e.begin);
  if (e.end > data_size)
    bad("data_offsets ", range_string(e.begin, e.end), " go past the ", data_size,
        "-byte data buffer (truncated file?)");
  return e;
}

// The tensors' byte ranges must tile the data buffer: no overlap, no gap, nothing after the last one.
void SafetensorsFile::check_coverage(std::uint64_t data_size) {
  std::sort(names_.begin(), names_.end(), [&](const std::string& a, const std::string& b) {
    const Entry &ea = entries_.at(a), &eb = entries_.at(b);
    return std::tie(ea.begin, ea.end, a) < std::tie(eb.begin, eb.end, b);
  });
  std::uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const std::string& name : names_) {
    const Entry& e = entries_.at(name);
    if (e.begin < covered)
      bad_file(path_, "tensors '", *previous, "' ", range_string(entries_.at(*previous).begin, covered), " and '", name,
               "' ", range_string(e.begin, e.end), " overlap");
    if (e.begin > covered)
      bad_file(path_, "bytes ", range_string(covered, e.begin), " of the data buffer belong to no tensor");
    covered = e.end;
    previous = &name;
  }
  if (covered < data_size)
    bad_file(path_, "the last ", data_size - covered, " bytes of the data buffer belong to no tensor");
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) bad_file(path_, "no tensor '", name, "'");
  return it->second;
}

const std::vector<std::int64_t>& SafetensorsFile::shape(const std::string& name) const { return entry(name).shape; }
const std::string& SafetensorsFile::dtype(const std::string& name) const { return entry(name).dtype; }
std::size_t SafetensorsFile::numel(const std::string& name) const { return entry(name).numel; }
std::pair<std::uint64_t, std::uint64_t> SafetensorsFile::data_range(const std::string& name) const {
  const Entry& e = entry(name);
  return {e.begin, e.end};
}

void SafetensorsFile::read(const std::string& name, std::span<float> out) const {
  const Entry& e = entry(name);
  if (out.size() != e.numel)
    bad_file(path_, "tensor '", name, "' has ", e.numel, " values, the destination holds ", out.size());
  if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16")
    bad_file(path_, "tensor '", name, "' is ", e.dtype, "; hax reads F32, F16 and BF16");
  if (e.numel == 0) return;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  const auto read_bytes = [&](void* to, std::uint64_t bytes) {
    in_.read(static_cast<char*>(to), static_cast<std::streamsize>(bytes));
    if (!in_) bad_file(path_, "cannot read tensor '", name, "' (file changed or truncated?)");
  };
  if (e.dtype == "F32") return read_bytes(out.data(), e.end - e.begin);
  std::vector<std::uint16_t> halves(e.numel);
  read_bytes(halves.data(), e.end - e.begin);
  const auto convert = e.dtype == "BF16" ? bf16_to_float : f16_to_float;
  std::transform(halves.begin(), halves.end(), out.begin(), convert);
}

TensorData SafetensorsFile::read(const std::string& name) const {
  TensorData t{name, shape(name), std::vector<float>(numel(name))};
  read(name, t.values);
  return t;
}

std::vector<TensorData> SafetensorsFile::read_all() const {
  std::vector<TensorData> tensors;
  for (const std::string& name : names_) tensors.push_back(read(name));
  return tensors;
}

// ---- parameter stores ----

namespace {

// The floats a flat buffer needs for `layout`.
std::size_t layout_floats(const ParamStore& layout) {
  std::size_t floats = 0;
  for (const TensorInfo& t : layout.tensors()) floats = std::max(floats, t.offset + t.numel);
  return floats;
}

}  // namespace

std::vector<TensorView> layout_views(const ParamStore& layout, std::span<const float> flat, const std::string& prefix) {
  check(flat.size() >= layout_floats(layout), "a buffer of ", flat.size(), " floats is smaller than the ",
        layout_floats(layout), " of the parameter layout");
  std::vector<TensorView> views;
  for (const TensorInfo& t : layout.tensors())
    views.push_back({prefix + t.name, t.shape, flat.subspan(t.offset, t.numel)});
  return views;
}

void read_layout(const SafetensorsFile& file, const ParamStore& layout, std::span<float> flat,
                 const std::string& prefix) {
  check(flat.size() >= layout_floats(layout), "a buffer of ", flat.size(), " floats is smaller than the ",
        layout_floats(layout), " of the parameter layout");
  for (const TensorInfo& t : layout.tensors()) {
    const std::string name = prefix + t.name;
    if (!file.contains(name)) bad_file(file.path(), "missing tensor '", name, "'");
    if (file.shape(name) != t.shape)
      bad_file(file.path(), "tensor '", name, "' has shape ", shape_string(file.shape(name)), ", expected ",
               shape_string(t.shape));
    file.read(name, flat.subspan(t.offset, t.numel));
  }
}

void save_params(const std::filesystem::path& path, const ParamStore& store, const SafetensorsMetadata& metadata) {
  save_params(path, {&store}, metadata);
}

void save_params(const std::filesystem::path& path, std::initializer_list<const ParamStore*> stores,
                 const SafetensorsMetadata& metadata) {
  std::vector<TensorView> views;
  for (const ParamStore* store : stores) {
    check(store->allocated(), "cannot save '", path.string(), "': the parameters are not allocated");
    const std::vector<TensorView> mine = layout_views(*store, store->params());
    views.insert(views.end(), mine.begin(), mine.end());
  }
  save_safetensors(path, views, metadata);
}

void load_params(const std::filesystem::path& path, ParamStore& store) { load_params(path, {&store}); }

namespace {

void read_stores(const SafetensorsFile& file, std::initializer_list<ParamStore*> stores) {
  for (ParamStore* store : stores) read_layout(file, *store, store->params());
}

// Where `store`'s flat buffer lies in the file as it is, byte for byte: every tensor F32, in the store's order, at its
// flat offset from the first one, and no padding in the store (the file has no gaps). The file holds every tensor of
// the store with its shape (load_params_mapped checks that first). Returns the file offset of the first tensor, or
// nothing when the layouts differ anywhere.
std::optional<std::uint64_t> flat_range_in_file(const SafetensorsFile& file, const ParamStore& store) {
  const std::vector<TensorInfo>& tensors = store.tensors();
  if (tensors.empty()) return std::nullopt;
  const TensorInfo& last = tensors.back();
  if (last.offset + last.numel != store.total_floats()) return std::nullopt;  // tail padding
  const std::uint64_t start = file.data_range(tensors.front().name).first;
  for (const TensorInfo& t : tensors)
    if (file.dtype(t.name) != "F32" || file.data_range(t.name).first != start + t.offset * sizeof(float))
      return std::nullopt;
  const std::uint64_t at = file.data_start() + start;
  if (at % AlignedBuffer::kAlignBytes != 0) return std::nullopt;
  return at;
}

// Maps the file and points every store's parameters into it when each store's layout lies in the file as it is
// (files written by save_params with tensor sizes in whole 64-byte lines, such as every model of the paper's shape
// and the 130M one). False, with nothing changed, otherwise.
bool map_stores(const SafetensorsFile& file, std::initializer_list<ParamStore*> stores) {
  std::vector<std::pair<ParamStore*, std::uint64_t>> ranges;
  for (ParamStore* store : stores) {
    if (store->tensors().empty()) continue;
    const std::optional<std::uint64_t> at = flat_range_in_file(file, *store);
    if (!at) return false;
    ranges.emplace_back(store, *at);
  }
  if (ranges.empty()) return false;
  const AlignedBuffer first = AlignedBuffer::map_file(file.path().string(), ranges.front().second,
                                                      ranges.front().first->total_floats());
  for (auto& [store, at] : ranges) store->use_params(first.view_of_same_mapping(at, store->total_floats()));
  return true;
}

// The checks every load makes before it copies or maps anything.
void check_loadable(const SafetensorsFile& file, std::initializer_list<ParamStore*> stores) {
  for (const ParamStore* store : stores)
    check(store->allocated(), "cannot load '", file.path().string(), "': the parameters are not allocated");
  for (const std::string& name : file.names()) {
    const bool known = std::any_of(stores.begin(), stores.end(), [&](const ParamStore* s) { return s->contains(name); });
    if (!known) bad_file(file.path(), "tensor '", name, "' is not a parameter of this model");
  }
}

// Where the layouts differ (padding in a store, another order, another writer): every F32 tensor copied from a
// mapping of the file, which is faster than reading it through a stream; other dtypes are read and converted.
void copy_from_mapping(const SafetensorsFile& file, std::initializer_list<ParamStore*> stores) {
  const AlignedBuffer mapping = AlignedBuffer::map_file(file.path().string(), 0, 0);
  const std::span<const char> bytes = mapping.mapped_file();
  for (ParamStore* store : stores)
    for (const TensorInfo& t : store->tensors()) {
      const std::span<float> to = store->param(t.name);
      if (file.dtype(t.name) != "F32") {
        file.read(t.name, to);
        continue;
      }
      const auto [begin, end] = file.data_range(t.name);
      if (file.data_start() + end > bytes.size())
        bad_file(file.path(), "tensor '", t.name, "' ends past the end of the file (file changed or truncated?)");
      std::memcpy(to.data(), bytes.data() + file.data_start() + begin, end - begin);
    }
}

}  // namespace

void load_params(const std::filesystem::path& path, std::initializer_list<ParamStore*> stores) {
  const SafetensorsFile file(path);
  check_loadable(file, stores);
  read_stores(file, stores);
}

void load_params_mapped(const std::filesystem::path& path, std::initializer_list<ParamStore*> stores) {
  const SafetensorsFile file(path);
  check_loadable(file, stores);
  // A missing tensor or a wrong shape is reported by read_layout's checks, which name it.
  for (const ParamStore* store : stores)
    for (const TensorInfo& t : store->tensors())
      if (!file.contains(t.name) || file.shape(t.name) != t.shape) return read_stores(file, stores);
  if (map_stores(file, stores)) return;
  copy_from_mapping(file, stores);
}

}  // namespace hax::io
