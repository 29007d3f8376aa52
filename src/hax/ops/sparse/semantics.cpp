#include "hax/ops/sparse/semantics.h"

namespace hax::ops::sparse {

const std::vector<std::string>& PaperIngredients::names() {
  static const std::vector<std::string> names = {"lsh_statistics", "ks_normalization", "uniform_fallback",
                                                 "gate_padding"};
  return names;
}

bool PaperIngredients::turn_off(const std::string& name) {
  bool* flags[] = {&lsh_statistics, &ks_normalization, &uniform_fallback, &gate_padding};
  for (std::size_t i = 0; i < names().size(); ++i)
    if (names()[i] == name) return *flags[i] = false, true;
  return false;
}

}  // namespace hax::ops::sparse
