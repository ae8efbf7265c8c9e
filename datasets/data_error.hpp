// The one exception type of the datasets layer: every failure to find, verify or parse data
// throws crt::data::DataError with a message that names the file (and line and token when relevant).
#pragma once

#include <stdexcept>
#include <string>

namespace crt::data {

class DataError : public std::runtime_error {
public:
    explicit DataError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace crt::data
