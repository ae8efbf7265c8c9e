// Fuzz target: the model configuration read from checkpoint metadata. The input is lines of
// "key=value" (the metadata map of a checkpoint); a configuration it accepts must be valid,
// and writing it back to metadata and reading that again must give the same metadata.
#include <map>
#include <string>
#include <string_view>

#include "crt/config.hpp"
#include "engine/error.hpp"
#include "tests/fuzz/fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> meta;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    const std::size_t eq = line.find('=');
    if (eq != std::string_view::npos) meta[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    begin = end + 1;
  }
  crt::model::ModelConfig config;
  try {
    config = crt::model::ModelConfig::from_metadata(meta);
  } catch (const crt::Error&) {
    return 0;
  }
  config.validate();  // from_metadata promises a valid configuration: throwing here is a finding
  const auto written = config.to_metadata();
  const auto reread = crt::model::ModelConfig::from_metadata(written);
  FUZZ_CHECK(reread.to_metadata() == written);
  return 0;
}
