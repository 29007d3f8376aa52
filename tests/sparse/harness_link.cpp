// The op harness of tests/ops (its checks on OpCase objects), compiled into this suite as well: the sparse kernels'
// cases get exactly the same fast-vs-reference, finite-difference, accumulation and null-gradient checks.
#include "../ops/op_harness.cpp"  // NOLINT(bugprone-suspicious-include): reuse, not a copy

namespace hax::ops::testing {
// gtest prints a case by its name. Declared in op_harness.h but defined in tests/ops/op_cases.cpp, which also
// holds that suite's tests, so this suite defines it too.
void PrintTo(const OpCasePtr& op, std::ostream* os) { *os << op->name(); }
}  // namespace hax::ops::testing
