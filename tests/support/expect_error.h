// expect_error_naming: the one way the suites check that a call fails with a hax::Error that says what and where.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "hax/engine/error.h"

namespace hax::testing {

// Runs `call`, expecting a hax::Error whose message contains every one of `parts`.
template <class Call>
void expect_error_naming(Call call, std::initializer_list<std::string> parts) {
  try {
    call();
    ADD_FAILURE() << "no hax::Error thrown";
  } catch (const Error& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << "'" << part << "' not in: " << e.what();
  }
}

}  // namespace hax::testing
