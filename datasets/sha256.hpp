// SHA-256 (FIPS 180-4), written for this project: an incremental hasher plus helpers that
// hash a byte string or stream a file from disk. Used to check corpora against SHA256SUMS.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace crt::data {

class Sha256 {
public:
    static constexpr std::size_t digest_size = 32;
    static constexpr std::size_t block_size = 64;
    using Digest = std::array<std::uint8_t, digest_size>;

    Sha256();

    // Feeds more message bytes; may be called any number of times before finish().
    void update(const void* data, std::size_t size);
    void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }

    // Pads the message and returns the digest. The hasher is then reset, ready for a new message.
    Digest finish();
    // finish(), as 64 lower-case hex characters.
    std::string finish_hex();

    void reset();

private:
    void compress_block(const std::uint8_t* block);

    std::array<std::uint32_t, 8> state_{};
    std::array<std::uint8_t, block_size> pending_{};
    std::size_t pending_size_ = 0;
    std::uint64_t total_bytes_ = 0;
};

// Lower-case hex of any digest-like byte array.
std::string to_hex(const Sha256::Digest& digest);

// SHA-256 of an in-memory byte string, as lower-case hex.
std::string sha256_hex(std::string_view bytes);

// SHA-256 of a file, read in fixed-size chunks (constant memory), as lower-case hex.
// Throws DataError naming the file if it cannot be opened or read.
std::string sha256_file_hex(const std::filesystem::path& file);

}  // namespace crt::data
