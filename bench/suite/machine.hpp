// What the benchmark programs record about the machine they ran on.
#pragma once

#include <fstream>
#include <string>

namespace crt::bench {

// The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none).
inline std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace crt::bench
