// Errors thrown by the engine. Every check on user input throws crt::Error with a message
// that names the op, the shapes involved and what was expected; nothing is assert-only.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace crt {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds "op: part1part2..." from streamable parts.
template <class... Parts>
std::string format_error(const char* op, Parts&&... parts) {
  std::ostringstream os;
  os << op << ": ";
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

// Throws crt::Error("op: ...") when cond is false. The message is only built on failure.
template <class... Parts>
inline void require(bool cond, const char* op, Parts&&... parts) {
  if (!cond) [[unlikely]]
    throw Error(format_error(op, std::forward<Parts>(parts)...));
}

}  // namespace crt
