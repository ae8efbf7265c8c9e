// Command-line options for every program of the project (crt, crt-bench, crt-reproduce,
// crt-decode-bench, train_demo): declared once as a list of OptionSpec, parsed from
// "--name value", "--name=value" or "--flag", read back range-checked into the type they are
// used as. Every problem is a UsageError whose message names the option and what it needs.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace crt::cli {

// A malformed command line; programs print it with a pointer to --help and exit with status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;           // without leading dashes
  std::string value_name;     // empty: a flag without a value
  std::string help;
  std::string default_value;  // what str() gives when the option is absent
};

class Options {
 public:
  // program: as the usage line names it ("crt train"); summary: one line of what it does.
  Options(std::string program, std::string summary, std::vector<OptionSpec> specs);

  // Reads argv[first..argc); a second occurrence of an option replaces the first.
  void parse(int argc, char** argv, int first = 1);

  bool help() const { return has("help"); }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string str(const std::string& name) const;
  // An integer in [lo, hi]; a fraction, text, an empty string or a value out of range is a
  // UsageError naming the option and the range.
  std::int64_t integer(const std::string& name, std::int64_t lo, std::int64_t hi) const;
  // A finite number in [lo, hi].
  double real(const std::string& name, double lo, double hi) const;
  // Comma-separated lists; an empty list or an empty item ("1,,2") is a UsageError.
  std::vector<std::string> strings(const std::string& name) const;
  std::vector<std::int64_t> integers(const std::string& name, std::int64_t lo, std::int64_t hi) const;

  std::string usage() const;
  const std::string& program() const { return program_; }

 private:
  const OptionSpec& spec(const std::string& name) const;
  std::string program_, summary_;
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::string> values_;
};

// The integer in `text` in [lo, hi] for option `name`, as Options::integer checks it.
std::int64_t parse_integer(const std::string& name, const std::string& text, std::int64_t lo, std::int64_t hi);

}  // namespace crt::cli
