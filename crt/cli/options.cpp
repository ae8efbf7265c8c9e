// Command-line options (see options.hpp).
#include "crt/cli/options.hpp"

#include <cmath>
#include <sstream>

namespace crt::cli {

namespace {
// The usage text's column where option descriptions start.
constexpr std::size_t kHelpColumn = 30;
}  // namespace

Options::Options(std::string program, std::string summary, std::vector<OptionSpec> specs)
    : program_(std::move(program)), summary_(std::move(summary)), specs_(std::move(specs)) {
  specs_.push_back({"help", "", "show this help", ""});
}

void Options::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h") {
      values_["help"] = "1";
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const OptionSpec* found = nullptr;
    for (const auto& s : specs_)
      if (s.name == name) found = &s;
    if (!found) throw UsageError("unknown option '--" + name + "'");
    if (found->value_name.empty()) {
      if (inline_value) throw UsageError("option '--" + name + "' takes no value");
      values_[name] = "1";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) throw UsageError("option '--" + name + "' needs a value (" + found->value_name + ")");
      value = argv[++i];
    }
    values_[name] = value;
  }
}

const OptionSpec& Options::spec(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return s;
  throw std::logic_error(program_ + " reads an option it does not declare: --" + name);
}

std::string Options::str(const std::string& name) const {
  const auto it = values_.find(name);
  return it != values_.end() ? it->second : spec(name).default_value;
}

std::int64_t parse_integer(const std::string& name, const std::string& s, std::int64_t lo, std::int64_t hi) {
  long long v = 0;
  std::size_t used = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || v < lo || v > hi)
    throw UsageError("option '--" + name + "' needs an integer in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got '" + s + "'");
  return v;
}

std::int64_t Options::integer(const std::string& name, std::int64_t lo, std::int64_t hi) const {
  return parse_integer(name, str(name), lo, hi);
}

double Options::real(const std::string& name, double lo, double hi) const {
  const std::string s = str(name);
  double v = 0;
  std::size_t used = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || !std::isfinite(v) || v < lo || v > hi) {
    std::ostringstream os;
    os << "option '--" << name << "' needs a number in [" << lo << ", " << hi << "], got '" << s << "'";
    throw UsageError(os.str());
  }
  return v;
}

std::vector<std::string> Options::strings(const std::string& name) const {
  const std::string s = str(name);
  std::vector<std::string> out;
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = s.find(',', begin);
    std::string item = s.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (item.empty()) throw UsageError("option '--" + name + "' has an empty item in '" + s + "'");
    out.push_back(std::move(item));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return out;
}

std::vector<std::int64_t> Options::integers(const std::string& name, std::int64_t lo, std::int64_t hi) const {
  std::vector<std::int64_t> out;
  for (const std::string& item : strings(name)) out.push_back(parse_integer(name, item, lo, hi));
  return out;
}

std::string Options::usage() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [options]\n" << summary_ << "\n\noptions:\n";
  for (const auto& s : specs_) {
    const std::string left = "  --" + s.name + (s.value_name.empty() ? "" : " " + s.value_name);
    os << left << std::string(left.size() < kHelpColumn ? kHelpColumn - left.size() : 1, ' ') << s.help;
    if (!s.default_value.empty()) os << " (default: " << s.default_value << ")";
    os << "\n";
  }
  return os.str();
}

}  // namespace crt::cli
