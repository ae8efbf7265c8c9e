// Fuzz target: the JSON parser and writer. Whatever parses must write out as JSON that parses
// again to a value that writes out the same (write . parse is a fixed point after one round).
#include <string>
#include <string_view>

#include "engine/error.hpp"
#include "engine/json.hpp"
#include "tests/fuzz/fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  crt::json::Value value;
  try {
    value = crt::json::parse(text);
  } catch (const crt::Error&) {
    return 0;
  }
  const std::string once = crt::json::write(value);
  crt::json::Value again;
  try {
    again = crt::json::parse(once);
  } catch (const crt::Error& e) {
    std::fprintf(stderr, "the writer's output does not parse: %s\n%s\n", e.what(), once.c_str());
    std::abort();
  }
  FUZZ_CHECK(again.kind() == value.kind());
  FUZZ_CHECK(crt::json::write(again) == once);
  return 0;
}
