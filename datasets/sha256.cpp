// SHA-256 as specified in FIPS 180-4 (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2), written for
// this project. Big-endian message schedule, 64 rounds per 512-bit block, length-suffixed padding.
#include "datasets/sha256.hpp"

#include "datasets/data_error.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace crt::data {
namespace {

// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes (2 .. 311).
constexpr std::array<std::uint32_t, 64> round_constants = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// FIPS 180-4 section 5.3.3: the first 32 bits of the fractional parts of the square roots of the
// first 8 primes.
constexpr std::array<std::uint32_t, 8> initial_state = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

// The logical functions of section 4.1.2.
constexpr std::uint32_t choose(std::uint32_t x, std::uint32_t y, std::uint32_t z) { return (x & y) ^ (~x & z); }
constexpr std::uint32_t majority(std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    return (x & y) ^ (x & z) ^ (y & z);
}
constexpr std::uint32_t big_sigma0(std::uint32_t x) { return std::rotr(x, 2) ^ std::rotr(x, 13) ^ std::rotr(x, 22); }
constexpr std::uint32_t big_sigma1(std::uint32_t x) { return std::rotr(x, 6) ^ std::rotr(x, 11) ^ std::rotr(x, 25); }
constexpr std::uint32_t small_sigma0(std::uint32_t x) { return std::rotr(x, 7) ^ std::rotr(x, 18) ^ (x >> 3); }
constexpr std::uint32_t small_sigma1(std::uint32_t x) { return std::rotr(x, 17) ^ std::rotr(x, 19) ^ (x >> 10); }

std::uint32_t load_big_endian_u32(const std::uint8_t* bytes) {
    return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
           std::uint32_t{bytes[3]};
}

struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
};

}  // namespace

Sha256::Sha256() { reset(); }

void Sha256::reset() {
    state_ = initial_state;
    pending_size_ = 0;
    total_bytes_ = 0;
}

void Sha256::compress_block(const std::uint8_t* block) {
    std::array<std::uint32_t, 64> schedule;
    for (int t = 0; t < 16; ++t) schedule[t] = load_big_endian_u32(block + 4 * t);
    for (int t = 16; t < 64; ++t) {
        schedule[t] = small_sigma1(schedule[t - 2]) + schedule[t - 7] + small_sigma0(schedule[t - 15]) + schedule[t - 16];
    }

    std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    std::uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (int t = 0; t < 64; ++t) {
        const std::uint32_t temp1 = h + big_sigma1(e) + choose(e, f, g) + round_constants[t] + schedule[t];
        const std::uint32_t temp2 = big_sigma0(a) + majority(a, b, c);
        h = g;
        g = f;
        f = e;
        e = d + temp1;
        d = c;
        c = b;
        b = a;
        a = temp1 + temp2;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
    state_[5] += f;
    state_[6] += g;
    state_[7] += h;
}

void Sha256::update(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    total_bytes_ += size;

    if (pending_size_ > 0) {
        const std::size_t take = std::min(size, block_size - pending_size_);
        std::memcpy(pending_.data() + pending_size_, bytes, take);
        pending_size_ += take;
        bytes += take;
        size -= take;
        if (pending_size_ < block_size) return;
        compress_block(pending_.data());
        pending_size_ = 0;
    }
    while (size >= block_size) {
        compress_block(bytes);
        bytes += block_size;
        size -= block_size;
    }
    if (size > 0) {
        std::memcpy(pending_.data(), bytes, size);
        pending_size_ = size;
    }
}

Sha256::Digest Sha256::finish() {
    // Section 5.1.1: append a 1 bit, then zeros up to 56 bytes mod 64, then the bit length (64-bit big-endian).
    const std::uint64_t message_bits = total_bytes_ * 8;
    std::array<std::uint8_t, 2 * block_size> padding{};
    padding[0] = 0x80;
    const std::size_t zero_pad = (pending_size_ < 56) ? (56 - pending_size_) : (block_size + 56 - pending_size_);
    for (int i = 0; i < 8; ++i) {
        padding[zero_pad + i] = static_cast<std::uint8_t>(message_bits >> (56 - 8 * i));
    }
    update(padding.data(), zero_pad + 8);

    Digest digest;
    for (std::size_t i = 0; i < state_.size(); ++i) {
        digest[4 * i + 0] = static_cast<std::uint8_t>(state_[i] >> 24);
        digest[4 * i + 1] = static_cast<std::uint8_t>(state_[i] >> 16);
        digest[4 * i + 2] = static_cast<std::uint8_t>(state_[i] >> 8);
        digest[4 * i + 3] = static_cast<std::uint8_t>(state_[i]);
    }
    reset();
    return digest;
}

std::string Sha256::finish_hex() { return to_hex(finish()); }

std::string to_hex(const Sha256::Digest& digest) {
    static constexpr char hex_digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * digest.size());
    for (std::uint8_t byte : digest) {
        hex.push_back(hex_digits[byte >> 4]);
        hex.push_back(hex_digits[byte & 0x0f]);
    }
    return hex;
}

std::string sha256_hex(std::string_view bytes) {
    Sha256 hasher;
    hasher.update(bytes);
    return hasher.finish_hex();
}

std::string sha256_file_hex(const std::filesystem::path& file) {
    errno = 0;
    std::unique_ptr<std::FILE, FileCloser> handle(std::fopen(file.string().c_str(), "rb"));
    if (!handle) {
        const int open_errno = errno;
        throw DataError("cannot open '" + file.string() + "' for hashing: " +
                        (open_errno != 0 ? std::strerror(open_errno) : "unknown error"));
    }
    Sha256 hasher;
    std::vector<std::uint8_t> chunk(1 << 16);
    while (true) {
        const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), handle.get());
        hasher.update(chunk.data(), got);
        if (got < chunk.size()) {
            if (std::ferror(handle.get())) throw DataError("error while reading '" + file.string() + "' for hashing");
            break;
        }
    }
    return hasher.finish_hex();
}

}  // namespace crt::data
