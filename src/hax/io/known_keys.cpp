#include "hax/io/known_keys.h"

#include <algorithm>
#include <cstddef>

#include "hax/engine/error.h"

namespace hax::io {
namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string closest_key_hint(const std::string& key, const std::vector<std::string>& known) {
  const auto closest = std::min_element(known.begin(), known.end(), [&](const auto& x, const auto& y) {
    return edit_distance(key, x) < edit_distance(key, y);
  });
  if (closest != known.end() && edit_distance(key, *closest) <= std::max<std::size_t>(2, key.size() / 3))
    return cat(" (did you mean '", *closest, "'?)");
  // A shortened or lengthened name ("window" for "window_size") is far in edits but plainly meant.
  const auto extended = std::find_if(known.begin(), known.end(), [&](const std::string& k) {
    return key.size() >= 3 && k.size() >= 3 && (k.starts_with(key) || key.starts_with(k));
  });
  if (extended != known.end()) return cat(" (did you mean '", *extended, "'?)");
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + (k.empty() ? "\"\"" : k);
  return cat(" (known: ", list, ")");
}

}  // namespace hax::io
