// Unknown keys in the project's JSON files (model configs, experiment files) are errors that point at the closest
// known key: a typo such as "hax_semantic" must not silently fall back to a default.
#pragma once

#include <string>
#include <vector>

namespace hax::io {

// " (did you mean 'KEY'?)" when a known key is within a few edits of `key` or extends it (or it extends a known
// key), else " (known: a, b, ...)".
std::string closest_key_hint(const std::string& key, const std::vector<std::string>& known);

}  // namespace hax::io
