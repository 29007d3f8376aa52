// The two semantics of the sparse branch (shared/spec/semantics.md): `paper` reproduces the reference code, quirks
// included (whole-sequence LSH and key-selection statistics, uniform attention for a query with no key); `causal`
// looks at no later position and gives a query with no key a zero output.
#pragma once

namespace hax::ops::sparse {

enum class Semantics { paper, causal };

}  // namespace hax::ops::sparse
