// Errors: every failure the user can cause (bad flag, bad file, bad shape) is a hax::Error whose message names
// the thing and the place. The CLI prints it on one line and exits non-zero; nothing else catches it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace hax {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates anything streamable: cat("bad shape ", n, " at ", path).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(cat(parts...));
}

template <class... Parts>
void check(bool ok, const Parts&... parts) {
  if (!ok) fail(parts...);
}

}  // namespace hax
