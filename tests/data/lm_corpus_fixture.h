// A small folder of synthetic text documents for the corpus tests: seeded, a few dozen short documents with line
// breaks, indentation, digits and non-ASCII text, so that a tokenizer of a few hundred pieces trains in a moment.
#pragma once

#include <zlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "hax/engine/rng.h"

namespace hax::testing {

inline std::string synthetic_document(std::uint64_t seed) {
  static const std::vector<std::string> words = {
      "the", "kernel", "driver", "memory", "page", "lock", "thread", "device", "buffer", "queue", "state", "model",
      "sparse", "attention", "token", "scan", "cache", "über", "naïve", "café", "—", "→", "日本語", "value"};
  Rng rng(seed);
  std::string text = "Document " + std::to_string(seed) + "\n=========\n\n";
  const int lines = 6 + static_cast<int>(rng.below(10));
  for (int line = 0; line < lines; ++line) {
    if (rng.below(4) == 0) text += "    ";  // an indented (code) line
    const int count = 4 + static_cast<int>(rng.below(9));
    for (int w = 0; w < count; ++w) {
      text += (w == 0 ? "" : " ") + words[rng.below(words.size())];
      if (rng.below(6) == 0) text += " " + std::to_string(rng.below(100000));
    }
    text += rng.below(5) == 0 ? ".\n\n" : ".\n";
  }
  return text;
}

inline void write_gzip_file(const std::filesystem::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}

// `documents` text files under `dir` (some in a subfolder, one gzip-compressed), plus a binary file, a file shorter
// than the default minimum and a duplicate of the first document, which prepare skips. Returns the texts by path
// relative to `dir`, as documents.jsonl names them.
inline std::vector<std::pair<std::string, std::string>> write_text_folder(const std::filesystem::path& dir,
                                                                          int documents = 40) {
  std::filesystem::create_directories(dir / "sub");
  std::vector<std::pair<std::string, std::string>> texts;
  for (int i = 0; i < documents; ++i) {
    const std::string text = synthetic_document(static_cast<std::uint64_t>(i) + 1);
    const std::string name = (i % 3 == 0 ? "sub/doc" : "doc") + std::to_string(100 + i) + ".rst";
    if (i == 5) {
      write_gzip_file(dir / (name + ".gz"), text);
      texts.emplace_back(name + ".gz", text);
    } else {
      write_file(dir / name, text);
      texts.emplace_back(name, text);
    }
  }
  write_file(dir / "image.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16) + std::string(200, '\x01'));
  write_file(dir / "tiny.txt", "too short\n");
  write_file(dir / "sub/zz-copy.rst", texts.front().second);
  return texts;
}

}  // namespace hax::testing
