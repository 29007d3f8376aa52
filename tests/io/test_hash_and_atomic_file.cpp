#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "hax/engine/error.h"
#include "hax/io/atomic_file.h"
#include "hax/io/hash.h"

namespace hax::io {
namespace {

std::vector<unsigned char> some_bytes(std::size_t n) {
  std::vector<unsigned char> bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  return bytes;
}

TEST(Hasher64, StreamingInAnyChunksEqualsOneShot) {
  const auto bytes = some_bytes(1000);
  const std::uint64_t whole = hash64(bytes.data(), bytes.size(), 9);
  for (std::size_t chunk : {1, 3, 31, 32, 33, 500}) {
    Hasher64 hasher(9);
    for (std::size_t at = 0; at < bytes.size(); at += chunk)
      hasher.update(bytes.data() + at, std::min(chunk, bytes.size() - at));
    EXPECT_EQ(hasher.digest(), whole) << "chunk " << chunk;
  }
  EXPECT_NE(hash64(bytes.data(), bytes.size(), 10), whole);
  EXPECT_NE(hash64(bytes.data(), 999, 9), whole);
}

TEST(Hasher64, EverySingleByteChangeChangesTheHash) {
  auto bytes = some_bytes(100);
  const std::uint64_t original = hash64(bytes.data(), bytes.size());
  const std::vector<unsigned char> zeros(100, 0);
  EXPECT_NE(hash64(zeros.data(), 99), hash64(zeros.data(), 100)) << "trailing zeros must count";
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char flip : {1, 0x80}) {
      bytes[i] ^= flip;
      EXPECT_NE(hash64(bytes.data(), bytes.size()), original) << "byte " << i;
      bytes[i] ^= flip;
    }
  }
}

TEST(Hash128Set, InsertsOnceAndSurvivesGrowth) {
  Hash128Set set;
  for (std::uint64_t i = 0; i < 5000; ++i) {
    const Hash128 key = hash128(&i, sizeof i);
    EXPECT_TRUE(set.insert(key));
    EXPECT_FALSE(set.insert(key));
  }
  EXPECT_EQ(set.size(), 5000u);
  for (std::uint64_t i = 0; i < 5000; ++i) EXPECT_FALSE(set.insert(hash128(&i, sizeof i)));
}

TEST(AtomicFile, AppearsOnlyOnCommit) {
  const testing::ScratchDir dir;
  const auto path = dir / "out.txt";
  {
    AtomicFile file(path);
    file.stream() << "complete";
    EXPECT_FALSE(std::filesystem::exists(path));
    file.commit();
  }
  EXPECT_EQ(testing::read_file(path), "complete");
  {
    AtomicFile file(path);  // replacing an existing file
    file.stream() << "second";
    file.commit();
  }
  EXPECT_EQ(testing::read_file(path), "second");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1) << "no temp file left";
}

TEST(AtomicFile, AnErrorLeavesNothingBehind) {
  const testing::ScratchDir dir;
  const auto path = dir / "out.bin";
  try {
    AtomicFile file(path);
    file.stream() << "partial";
    throw std::runtime_error("generator failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(AtomicFile, UnwritablePathsAreNamedInTheError) {
  const testing::ScratchDir dir;
  testing::write_file(dir / "plain", "x");
  for (const std::filesystem::path& path : {dir / "missing" / "out.bin", dir / "plain" / "out.bin", dir.path()}) {
    try {
      AtomicFile file(path);
      FAIL() << path << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
}

// A symlinked output is written through: the link stays a link, the file it points to gets the bytes, and the temp
// file went beside that file (nothing is left in either folder).
TEST(AtomicFile, WritesThroughASymlink) {
  const testing::ScratchDir dir;
  std::filesystem::create_directories(dir / "real");
  testing::write_file(dir / "real" / "out.txt", "old");
  std::filesystem::create_symlink(dir / "real" / "out.txt", dir / "link.txt");
  AtomicFile file(dir / "link.txt");
  file.stream() << "new";
  file.commit();
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "link.txt"));
  EXPECT_EQ(testing::read_file(dir / "real" / "out.txt"), "new");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir / "real"), {}), 1);
}

// A destination that is not a regular file is written directly and stays what it was: /dev/null takes the bytes,
// and /dev/full (directly or through a link) is a write error naming the path given, never a silent success.
TEST(AtomicFile, DevicesAreWrittenDirectlyAndAFullOneIsAnError) {
  const testing::ScratchDir dir;
  {
    AtomicFile file("/dev/null");
    file.stream() << "discarded";
    file.commit();
  }
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
  if (!std::filesystem::is_character_file("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  std::filesystem::create_symlink("/dev/full", dir / "full-link");
  for (const std::filesystem::path& path : {std::filesystem::path("/dev/full"), dir / "full-link"}) {
    try {
      AtomicFile file(path);
      file.stream() << std::string(4 << 20, 'x');  // past the stream buffer, so the device sees writes
      file.commit();
      FAIL() << path << ": a write to a full device succeeded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("write failed"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::filesystem::is_character_file("/dev/full"));
  }
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "full-link"));
}

}  // namespace
}  // namespace hax::io
