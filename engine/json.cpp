// Strict JSON: recursive-descent parser with a depth bound, UTF-8 validation, \uXXXX escapes
// (surrogate pairs joined, lone surrogates refused) and exact 64-bit integers; compact writer.
#include "engine/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <system_error>
#include <unordered_set>

#include "engine/error.hpp"

namespace crt::json {

namespace {

// Length of the well-formed UTF-8 sequence starting at text[pos], or 0 when it is malformed
// (RFC 3629: no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char second_lo = 0x80, second_hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_lo = 0xA0;
    if (lead == 0xED) second_hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_lo = 0x90;
    if (lead == 0xF4) second_hi = 0x8F;
  } else {
    return 0;
  }
  if (text.size() - pos < length) return 0;
  if (byte(pos + 1) < second_lo || byte(pos + 1) > second_hi) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if (byte(pos + i) < 0x80 || byte(pos + i) > 0xBF) return 0;
  return length;
}

void append_utf8(std::string& out, std::uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

std::string describe_byte(unsigned char c) {
  char buf[32];
  if (c >= 0x20 && c < 0x7F)
    std::snprintf(buf, sizeof buf, "'%c'", c);
  else
    std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
  return buf;
}

class Parser {
 public:
  Parser(std::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  Value parse_document() {
    skip_whitespace();
    if (at_end()) fail("empty document");
    Value root = parse_value(0);
    skip_whitespace();
    if (!at_end()) fail("unexpected " + describe_byte(peek()) + " after the document");
    return root;
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }

  [[noreturn]] void fail(const std::string& problem) const { fail_at(pos_, problem); }
  [[noreturn]] void fail_at(std::size_t pos, const std::string& problem) const {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error(format_error("json", problem, " at byte ", pos, " (line ", line, ", column ", column, ")"));
  }
  [[noreturn]] void fail_unexpected(const char* expected) const {
    if (at_end()) fail(std::string("unexpected end of input, expected ") + expected);
    fail("unexpected " + describe_byte(peek()) + ", expected " + expected);
  }

  void skip_whitespace() {
    while (!at_end()) {
      const unsigned char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++pos_;
    }
  }

  void expect(char c, const char* expected) {
    if (at_end() || text_[pos_] != c) fail_unexpected(expected);
    ++pos_;
  }

  Value parse_value(int depth) {
    if (at_end()) fail_unexpected("a value");
    switch (peek()) {
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_array(depth + 1);
      case '"':
        return Value::string(parse_string());
      case 't':
        parse_literal("true");
        return Value::boolean(true);
      case 'f':
        parse_literal("false");
        return Value::boolean(false);
      case 'n':
        parse_literal("null");
        return Value();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail_unexpected("a value");
    }
  }

  void check_depth(int depth) const {
    if (depth > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
  }

  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Value::Object members;
    std::unordered_set<std::string> keys;
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return Value::object(std::move(members));
    }
    while (true) {
      skip_whitespace();
      if (at_end() || peek() != '"') fail_unexpected("a string key");
      const std::size_t key_pos = pos_;
      std::string key = parse_string();
      if (!keys.insert(key).second) fail_at(key_pos, "duplicate key \"" + key + "\"");
      skip_whitespace();
      expect(':', "':'");
      skip_whitespace();
      Value item = parse_value(depth);
      members.emplace_back(std::move(key), std::move(item));
      skip_whitespace();
      if (!at_end() && peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}', "',' or '}'");
      return Value::object(std::move(members));
    }
  }

  Value parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Value::Array items;
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return Value::array(std::move(items));
    }
    while (true) {
      skip_whitespace();
      items.push_back(parse_value(depth));
      skip_whitespace();
      if (!at_end() && peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']', "',' or ']'");
      return Value::array(std::move(items));
    }
  }

  void parse_literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) fail("invalid literal, expected " + std::string(word));
    pos_ += word.size();
  }

  std::uint32_t parse_hex4() {
    if (text_.size() - pos_ < 4) fail("truncated \\u escape");
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_];
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9')
        digit = std::uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        digit = std::uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        digit = std::uint32_t(c - 'A' + 10);
      else
        fail("invalid hex digit " + describe_byte(static_cast<unsigned char>(c)) + " in \\u escape");
      value = value * 16 + digit;
      ++pos_;
    }
    return value;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character " + describe_byte(c) + " in string");
      if (c >= 0x80) {
        const std::size_t length = utf8_sequence_length(text_, pos_);
        if (length == 0) fail("invalid UTF-8 in string");
        out.append(text_.substr(pos_, length));
        pos_ += length;
        continue;
      }
      ++pos_;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (at_end()) fail("unterminated escape in string");
      const char escape = text_[pos_];
      const std::size_t escape_pos = pos_ - 1;
      ++pos_;
      switch (escape) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t code_point = parse_hex4();
          if (code_point >= 0xDC00 && code_point <= 0xDFFF) fail_at(escape_pos, "lone low surrogate in \\u escape");
          if (code_point >= 0xD800 && code_point <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") fail_at(escape_pos, "high surrogate not followed by a low surrogate");
            pos_ += 2;
            const std::uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail_at(escape_pos, "high surrogate not followed by a low surrogate");
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, code_point);
          break;
        }
        default:
          fail_at(escape_pos, "invalid escape \\" + std::string(1, escape) + " in string");
      }
    }
  }

  Value parse_number() {
    const std::size_t start = pos_;
    const auto is_digit = [&] { return !at_end() && peek() >= '0' && peek() <= '9'; };
    bool plain_integer = true;
    if (peek() == '-') {
      plain_integer = false;
      ++pos_;
    }
    if (!is_digit()) fail("invalid number: expected a digit");
    if (peek() == '0') {
      ++pos_;
      if (is_digit()) fail_at(start, "invalid number: leading zero");
    } else {
      while (is_digit()) ++pos_;
    }
    if (!at_end() && peek() == '.') {
      plain_integer = false;
      ++pos_;
      if (!is_digit()) fail("invalid number: expected a digit after '.'");
      while (is_digit()) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      plain_integer = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!is_digit()) fail("invalid number: expected a digit in the exponent");
      while (is_digit()) ++pos_;
    }
    const std::string_view literal = text_.substr(start, pos_ - start);
    double d = 0.0;
    const auto [end, ec] = std::from_chars(literal.data(), literal.data() + literal.size(), d);
    if (ec == std::errc::result_out_of_range) fail_at(start, "number out of range");
    if (ec != std::errc() || end != literal.data() + literal.size()) fail_at(start, "invalid number");
    if (plain_integer) {
      std::uint64_t u = 0;
      const auto [uend, uec] = std::from_chars(literal.data(), literal.data() + literal.size(), u);
      if (uec == std::errc() && uend == literal.data() + literal.size()) {
        Value v = Value::integer(u);
        return v;
      }
    }
    return Value::number(d);
  }

  std::string_view text_;
  int max_depth_;
  std::size_t pos_ = 0;
};

void write_string(std::string& out, const std::string& s) {
  if (!is_valid_utf8(s)) throw Error(format_error("json", "cannot write a string that is not valid UTF-8"));
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void write_value(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::null: out += "null"; return;
    case Value::Kind::boolean: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::number: {
      if (const auto u = v.as_u64()) {
        out += std::to_string(*u);
        return;
      }
      const double d = v.as_number();
      if (!std::isfinite(d)) throw Error(format_error("json", "cannot write the non-finite number ", d));
      char buf[64];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
      if (ec != std::errc()) throw Error(format_error("json", "cannot format the number ", d));
      out.append(buf, end);
      return;
    }
    case Value::Kind::string: write_string(out, v.as_string()); return;
    case Value::Kind::array: {
      out += '[';
      bool first = true;
      for (const Value& item : v.as_array()) {
        if (!first) out += ',';
        first = false;
        write_value(out, item);
      }
      out += ']';
      return;
    }
    case Value::Kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        write_string(out, key);
        out += ':';
        write_value(out, item);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::null: return "null";
    case Value::Kind::boolean: return "boolean";
    case Value::Kind::number: return "number";
    case Value::Kind::string: return "string";
    case Value::Kind::array: return "array";
    case Value::Kind::object: return "object";
  }
  return "?";
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::boolean;
  v.bool_ = b;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::number;
  v.number_ = d;
  return v;
}

Value Value::integer(std::uint64_t u) {
  Value v;
  v.kind_ = Kind::number;
  v.number_ = static_cast<double>(u);
  v.is_u64_ = true;
  v.u64_ = u;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::string;
  v.string_ = std::move(s);
  return v;
}

Value Value::array(Array items) {
  Value v;
  v.kind_ = Kind::array;
  v.array_ = std::move(items);
  return v;
}

Value Value::object(Object members) {
  std::vector<const std::string*> keys;
  keys.reserve(members.size());
  for (const auto& member : members) keys.push_back(&member.first);
  std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  const auto dup = std::adjacent_find(keys.begin(), keys.end(),
                                      [](const std::string* a, const std::string* b) { return *a == *b; });
  require(dup == keys.end(), "json", "duplicate object key \"", dup == keys.end() ? std::string() : **dup, "\"");
  Value v;
  v.kind_ = Kind::object;
  v.object_ = std::move(members);
  return v;
}

bool Value::as_bool() const {
  require(kind_ == Kind::boolean, "json", "expected a boolean, got ", kind_name(kind_));
  return bool_;
}

double Value::as_number() const {
  require(kind_ == Kind::number, "json", "expected a number, got ", kind_name(kind_));
  return number_;
}

const std::string& Value::as_string() const {
  require(kind_ == Kind::string, "json", "expected a string, got ", kind_name(kind_));
  return string_;
}

const Value::Array& Value::as_array() const {
  require(kind_ == Kind::array, "json", "expected an array, got ", kind_name(kind_));
  return array_;
}

const Value::Object& Value::as_object() const {
  require(kind_ == Kind::object, "json", "expected an object, got ", kind_name(kind_));
  return object_;
}

std::optional<std::uint64_t> Value::as_u64() const {
  if (kind_ == Kind::number && is_u64_) return u64_;
  return std::nullopt;
}

const Value* Value::find(std::string_view key) const {
  if (kind_ != Kind::object) return nullptr;
  for (const auto& member : object_)
    if (member.first == key) return &member.second;
  return nullptr;
}

void Value::push_back(Value item) {
  require(kind_ == Kind::array, "json", "push_back on a ", kind_name(kind_), ", expected an array");
  array_.push_back(std::move(item));
}

void Value::add(std::string key, Value item) {
  require(kind_ == Kind::object, "json", "add on a ", kind_name(kind_), ", expected an object");
  require(find(key) == nullptr, "json", "duplicate object key \"", key, "\"");
  object_.emplace_back(std::move(key), std::move(item));
}

Value parse(std::string_view text, int max_depth) { return Parser(text, max_depth).parse_document(); }

std::string write(const Value& value) {
  std::string out;
  write_value(out, value);
  return out;
}

bool is_valid_utf8(std::string_view bytes) {
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t length = utf8_sequence_length(bytes, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

}  // namespace crt::json
