// The record conf.yaml keeps of its model.bin (`weight_file: {size, checksum}`), so a conf.yaml
// run with another model's weights is refused instead of printing garbage.
//
// The checksum is sampled, to stay cheap at load on a 440 MB model.bin: a 64-bit hash of the
// first 64 bytes of every 4 KiB page and the last 64 bytes of the file, seeded with the file's
// size. It reads 1/64 of the bytes but touches every page once (the executor reads every weight
// at init anyway), so the weights of another model (which differ nearly everywhere), a truncated,
// extended or re-written file are caught; a few bytes changed inside one page may not be.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ne {

// The method name written before the hash in conf.yaml: "page64:<16 hex digits>".
constexpr const char* kWeightChecksumMethod = "page64";

// A 64-bit hash of n bytes (multiply-rotate rounds over 8-byte words in 4 lanes, XXH64-style
// avalanche); not cryptographic.
uint64_t hash64(const void* data, size_t n, uint64_t seed);

// "page64:" + 16 lowercase hex digits, over `size` bytes at `data` (sampled as above).
std::string weight_file_checksum(const uint8_t* data, size_t size);

}  // namespace ne
