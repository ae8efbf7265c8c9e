// A tiny strict JSON value, parser and compact writer: enough for safetensors headers.
// The parser accepts only RFC 8259 JSON in valid UTF-8, bounds nesting depth, rejects duplicate
// object keys, and reports errors as crt::Error with the byte offset, line and column.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crt::json {

class Value {
 public:
  enum class Kind : std::uint8_t { null, boolean, number, string, array, object };
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;  // insertion order; keys unique

  Value() = default;  // null
  static Value boolean(bool b);
  static Value number(double d);
  static Value integer(std::uint64_t u);  // written without fraction or exponent
  static Value string(std::string s);
  static Value array(Array items = {});
  static Value object(Object members = {});

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_number() const { return kind_ == Kind::number; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }

  // Typed access; each throws crt::Error naming the expected and the actual kind.
  bool as_bool() const;
  double as_number() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;
  // The value of a number written as a plain non-negative integer (no sign, fraction or
  // exponent) that fits in 64 bits; nullopt for anything else, numbers or not.
  std::optional<std::uint64_t> as_u64() const;

  // Object member lookup (linear); null pointer when absent or when this is not an object.
  const Value* find(std::string_view key) const;
  // Appends to an array / an object; add() throws on a duplicate key.
  void push_back(Value item);
  void add(std::string key, Value item);

 private:
  Kind kind_ = Kind::null;
  bool bool_ = false;
  bool is_u64_ = false;
  double number_ = 0.0;
  std::uint64_t u64_ = 0;
  std::string string_;
  Array array_;
  Object object_;
};

const char* kind_name(Value::Kind kind);

inline constexpr int kDefaultMaxDepth = 64;

// Parses a whole document (surrounding whitespace allowed, nothing else). Throws crt::Error
// "json: <problem> at byte N (line L, column C)".
Value parse(std::string_view text, int max_depth = kDefaultMaxDepth);

// Compact serialisation (no whitespace). Strings are escaped as JSON requires; throws
// crt::Error for a string that is not valid UTF-8 or a non-finite number.
std::string write(const Value& value);

// True when bytes form valid UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

}  // namespace crt::json
