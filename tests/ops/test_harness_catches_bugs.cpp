// The harness's checks must fail on a wrong op: a toy op y = a^2 + b, correct or with one planted bug, run through
// each check with gtest's failure reporter intercepted.
#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <string>
#include <type_traits>
#include <vector>

#include "op_harness.h"

namespace hax::ops::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

enum class Bug { kNone, kReferenceGradientWrong, kFastForwardOff, kFastOverwrites, kFastNullChangesOthers };

class ToyCase : public OpCaseOf<ToyCase> {
 public:
  explicit ToyCase(Bug bug) : OpCaseOf("toy", 7), bug_(bug) {
    add_input({.name = "a", .size = 17, .grad_optional = true});
    add_input({.name = "b", .size = 17, .grad_optional = true});
    set_out_size(17);
  }
  template <class Real>
  void run_forward(Buffers<Real>& buf) const {
    const Real off = fast<Real>() && bug_ == Bug::kFastForwardOff ? Real(1.001) : Real(1);
    for (std::size_t i = 0; i < 17; ++i) buf.out[i] = (buf.in[0][i] * buf.in[0][i] + buf.in[1][i]) * off;
  }
  template <class Real>
  void run_backward(Buffers<Real>& buf) const {
    Real* da = buf.gradient(0);
    Real* db = buf.gradient(1);
    const Real slope = !fast<Real>() && bug_ == Bug::kReferenceGradientWrong ? Real(2.01) : Real(2);
    const bool overwrite = fast<Real>() && bug_ == Bug::kFastOverwrites;
    const Real db_factor = fast<Real>() && bug_ == Bug::kFastNullChangesOthers && !da ? Real(2) : Real(1);
    for (std::size_t i = 0; i < 17; ++i) {
      const Real g = buf.dout[i];
      if (da) da[i] = (overwrite ? Real(0) : da[i]) + slope * buf.in[0][i] * g;
      if (db) db[i] += db_factor * g;
    }
  }

 private:
  template <class Real>
  static constexpr bool fast() {
    return std::is_same_v<Real, float>;
  }
  Bug bug_;
};

// The messages of the gtest failures that check(op) reports.
std::vector<std::string> failures_of(void (*check)(const OpCase&), Bug bug) {
  ::testing::TestPartResultArray results;
  {
    const ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    check(ToyCase(bug));
  }
  std::vector<std::string> messages;
  for (int i = 0; i < results.size(); ++i) messages.push_back(results.GetTestPartResult(i).message());
  return messages;
}

TEST(OpHarness, PassesACorrectOp) {
  EXPECT_THAT(failures_of(check_gradients_against_finite_differences, Bug::kNone), IsEmpty());
  EXPECT_THAT(failures_of(check_fast_against_reference, Bug::kNone), IsEmpty());
  EXPECT_THAT(failures_of(check_backward_accumulates, Bug::kNone), IsEmpty());
  EXPECT_THAT(failures_of(check_null_gradients_are_skipped, Bug::kNone), IsEmpty());
}

TEST(OpHarness, FiniteDifferencesCatchAGradientOffByHalfAPercent) {
  EXPECT_THAT(failures_of(check_gradients_against_finite_differences, Bug::kReferenceGradientWrong),
              ElementsAre(HasSubstr("reference da vs finite differences")));
}

TEST(OpHarness, FastVersusReferenceCatchesAForwardOffByOnePerMille) {
  EXPECT_THAT(failures_of(check_fast_against_reference, Bug::kFastForwardOff), ElementsAre(HasSubstr("fast output")));
}

TEST(OpHarness, CatchesABackwardThatOverwrites) {
  EXPECT_THAT(failures_of(check_backward_accumulates, Bug::kFastOverwrites),
              ElementsAre(HasSubstr("fast da added to a pre-filled buffer")));
}

TEST(OpHarness, CatchesANullGradientThatChangesAnother) {
  EXPECT_THAT(failures_of(check_null_gradients_are_skipped, Bug::kFastNullChangesOthers),
              ElementsAre(HasSubstr("fast db with da null")));
}

}  // namespace
}  // namespace hax::ops::testing
