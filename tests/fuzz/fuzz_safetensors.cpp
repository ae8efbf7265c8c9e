// Fuzz target: the safetensors reader on an image in memory. A file it accepts must hold
// exactly the tensors it describes: every element of every tensor is read (so a wrong extent
// shows up under AddressSanitizer) and the tensors' bytes add up to the data buffer.
#include <string_view>

#include "engine/error.hpp"
#include "engine/safetensors.hpp"
#include "tests/fuzz/fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  crt::SafetensorsFile file;
  try {
    file = crt::parse_safetensors_bytes(bytes, "fuzz input");
  } catch (const crt::Error&) {
    return 0;
  }
  std::uint64_t tensor_bytes = 0;
  volatile unsigned char sink = 0;
  for (const auto& [name, t] : file.tensors) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(t.is_contiguous());
    const std::size_t n = std::size_t(t.numel()) * crt::dtype_size(t.dtype());
    const auto* p = static_cast<const unsigned char*>(t.impl().storage->data());
    unsigned char acc = 0;
    for (std::size_t i = 0; i < n; ++i) acc = static_cast<unsigned char>(acc ^ p[i]);
    sink = static_cast<unsigned char>(sink ^ acc);
    tensor_bytes += n;
    FUZZ_CHECK(file.contains(name));
  }
  (void)sink;
  // Accepted files have no gaps and nothing after the tensors: prefix + header + data = size.
  FUZZ_CHECK(size >= 8);
  std::uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | data[i];
  FUZZ_CHECK(8 + header + tensor_bytes == size);
  return 0;
}
