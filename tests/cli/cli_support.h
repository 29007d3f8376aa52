// What the CLI tests share: running the built `hax`, a tiny model and joint-recall grid that train in a moment, a
// checkpoint made in-process for tests that need a model but not a trained one, and checks on error output and SVG.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../support/model_fixtures.h"
#include "../support/test_support.h"
#include "hax/models/model.h"
#include "hax/training/checkpoint.h"

namespace hax::testing {

// A 2 x 2 grid of (n_context, n_key) cells: 32 training and 4 validation and test sequences per cell.
inline const std::string kTinyTask =
    "--min-contexts 2 --max-contexts 3 --min-keys 2 --max-keys 3 --values 4 --train-per-cell 32 --eval-per-cell 4";

inline std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

inline CommandResult run_hax(const std::string& args) { return run_command(quoted(HAX_BINARY) + " " + args); }

inline std::filesystem::path write_tiny_config(const ScratchDir& dir) {
  const auto path = dir / "config.json";
  write_file(path, tiny_mamba_config().to_json().dump(2));
  return path;
}

// A checkpoint folder holding a freshly initialized tiny model.
inline std::filesystem::path save_untrained_checkpoint(const ScratchDir& dir) {
  const auto path = dir / "untrained";
  training::save_model(path, models::Model(tiny_mamba_config()));
  return path;
}

// A tiny HAX (sign_bin_lsh+key_selection) checkpoint under `semantics`, for streaming runs.
inline std::filesystem::path save_sparse_checkpoint(const ScratchDir& dir, ops::sparse::Semantics semantics) {
  models::ModelConfig c = tiny_mamba_config();
  c.sparse_arch = "sign_bin_lsh+key_selection";
  c.sparse_keys = 8;
  c.num_hash = 3;
  c.data_max_length = 32;
  c.semantics = semantics;
  const auto path = dir / models::semantics_name(semantics);
  training::save_model(path, models::Model(c));
  return path;
}

// Fails with a non-zero exit and exactly one line on stderr, "hax: error: ...", that mentions `mention`.
inline ::testing::AssertionResult FailsWithOneErrorLine(const CommandResult& r, const std::string& mention) {
  if (r.exit_code == 0) return ::testing::AssertionFailure() << "exit code 0; stderr: " << r.err;
  const bool one_line = !r.err.empty() && r.err.find('\n') == r.err.size() - 1;
  if (!one_line || !r.err.starts_with("hax: error: "))
    return ::testing::AssertionFailure() << "expected one 'hax: error:' line, got: " << r.err;
  if (r.err.find(mention) == std::string::npos)
    return ::testing::AssertionFailure() << "the error does not mention '" << mention << "': " << r.err;
  return ::testing::AssertionSuccess();
}

// The element names of an XML document in document order, after checking that every start tag is closed by a
// matching end tag in the right order (the structure a viewer needs; attribute syntax is not checked).
inline std::vector<std::string> xml_elements(const std::string& xml) {
  std::vector<std::string> open, elements;
  for (std::size_t at = xml.find('<'); at != std::string::npos; at = xml.find('<', at + 1)) {
    const std::size_t end = xml.find('>', at);
    if (end == std::string::npos) throw std::runtime_error("unterminated tag at " + std::to_string(at));
    const std::string tag = xml.substr(at + 1, end - at - 1);
    if (tag.starts_with("?") || tag.starts_with("!")) continue;
    const std::string name = tag.substr(tag.starts_with("/"), tag.find_first_of(" \t\n/>", 1) - tag.starts_with("/"));
    if (tag.starts_with("/")) {
      if (open.empty() || open.back() != name) throw std::runtime_error("unbalanced </" + name + ">");
      open.pop_back();
    } else {
      elements.push_back(name);
      if (!tag.ends_with("/")) open.push_back(name);
    }
  }
  if (!open.empty()) throw std::runtime_error("<" + open.back() + "> is never closed");
  return elements;
}

}  // namespace hax::testing
