// The two semantics of the sparse branch (shared/spec/semantics.md): `paper` reproduces the reference code, quirks
// included (whole-sequence LSH and key-selection statistics, uniform attention for a query with no key); `causal`
// looks at no later position and gives a query with no key a zero output.
#pragma once

#include <string>
#include <vector>

namespace hax::ops::sparse {

enum class Semantics { paper, causal };

// `paper`'s ingredients that differ from `causal`, each of which can be turned off on its own to find out which of
// them changes how a model learns (an ablation; docs/results.md). Under `causal` every one is off. Each op takes
// the Semantics of its own ingredient: ingredient_semantics() below.
struct PaperIngredients {
  bool lsh_statistics = true;    // LSH inputs centred and scaled per feature over the whole padded sequence
  bool ks_normalization = true;  // key-selection cumsum(Q) divided by its norm over the whole padded sequence
  bool uniform_fallback = true;  // a query with no allowed key attends uniformly to all T positions
  bool gate_padding = true;      // the gate loss ranks padded positions and counts padded queries in its targets

  static PaperIngredients none() { return {false, false, false, false}; }
  // The ingredients' names, as "hax_paper_without" lists them.
  static const std::vector<std::string>& names();
  // Turns one ingredient off by name; false for an unknown name.
  bool turn_off(const std::string& name);
};

// `paper` where the ingredient is on, `causal` where it is off.
inline Semantics ingredient_semantics(bool on) { return on ? Semantics::paper : Semantics::causal; }

}  // namespace hax::ops::sparse
