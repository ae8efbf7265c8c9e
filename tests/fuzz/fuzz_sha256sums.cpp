// Fuzz target: the SHA256SUMS manifest parser. Every digest it returns is 64 lower-case hex
// digits under a non-empty name, and writing the entries back in `sha256sum` form parses to
// the same map.
#include <string>
#include <string_view>

#include "datasets/corpus.hpp"
#include "datasets/data_error.hpp"
#include "tests/fuzz/fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::unordered_map<std::string, std::string> digests;
  try {
    digests = crt::data::parse_sha256sums(text, "fuzz input");
  } catch (const crt::data::DataError&) {
    return 0;
  }
  std::string rewritten;
  for (const auto& [name, digest] : digests) {
    FUZZ_CHECK(digest.size() == 64);
    for (const char c : digest) FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    FUZZ_CHECK(name.find('\n') == std::string::npos);
    rewritten += digest + "  " + name + "\n";
  }
  // Names that end in '\r' or start with "./" or '#' are not written back unchanged by sha256sum
  // either; the round trip is checked on the others.
  bool plain = true;
  for (const auto& [name, digest] : digests)
    plain = plain && !name.empty() && name.back() != '\r' && !name.starts_with("./");
  if (plain) FUZZ_CHECK(crt::data::parse_sha256sums(rewritten, "rewritten") == digests);
  return 0;
}
