// The one entry point every fuzz target defines (libFuzzer's), and the checks they share.
// A target must return normally for any input: the project's own errors (crt::Error,
// crt::data::DataError) are the expected answer to bad input; anything else escaping (another
// exception, a crash, a sanitizer report, a failed FUZZ_CHECK) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

// An invariant of the code under test; aborts (a finding) when it does not hold.
#define FUZZ_CHECK(condition)                                                       \
  do {                                                                              \
    if (!(condition)) {                                                             \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
