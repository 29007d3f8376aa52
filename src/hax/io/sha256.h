// SHA-256 (FIPS 180-4), for fingerprints that must mean the same everywhere: a prepared corpus records its
// tokenizer model's SHA-256, which anyone can check with `sha256sum`. (io/hash.h is the fast, non-cryptographic
// hash for checksums inside hax's own formats.)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hax::io {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  // The digest of everything updated so far, as 64 lowercase hex digits; the hasher is spent afterwards.
  std::string hex_digest();

 private:
  void compress(const unsigned char* block);

  std::array<std::uint32_t, 8> state_;
  std::array<unsigned char, 64> pending_{};
  std::size_t pending_size_ = 0;
  std::uint64_t total_size_ = 0;
};

std::string sha256_hex(std::string_view bytes);

}  // namespace hax::io
