// Tests of engine/json and engine/safetensors: JSON grammar and errors, bit-exact round trips,
// the on-disk layout, atomic saves, every load-time refusal, and random corruptions.
// The "interop" cases are skipped by default; tests/safetensors_reader.py runs them with --no-skip.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>
#include <algorithm>
#include <atomic>
#include <thread>

#include "engine/error.hpp"
#include "engine/json.hpp"
#include "engine/random.hpp"
#include "engine/safetensors.hpp"

using namespace crt;
namespace fs = std::filesystem;

namespace {

// Runs fn, expects crt::Error, and checks that each fragment appears in its message.
template <class Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    FAIL("expected crt::Error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments)
      CHECK_MESSAGE(msg.find(f) != std::string::npos, "message: ", msg, " lacks: ", f);
  }
}

// A fresh directory under the system temp directory, removed on destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("crt_safetensors_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

std::string u64_le(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[std::size_t(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

std::uint64_t read_u64_le(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(static_cast<unsigned char>(s[at + std::size_t(i)])) << (8 * i);
  return v;
}

// A file made by hand: length prefix, header text (optionally space-padded to 8), data bytes.
std::string craft(const std::string& header, const std::string& data, bool pad = true) {
  std::string h = header;
  if (pad) h.append((8 - h.size() % 8) % 8, ' ');
  return u64_le(h.size()) + h + data;
}

// Bit patterns of all elements in row-major order (NaN payloads and -0.0 compare exactly).
std::vector<std::uint64_t> bits_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<std::uint64_t> out;
  for (std::int64_t i = 0; i < c.numel(); ++i) {
    std::uint64_t b = 0;
    if (c.dtype() == DType::f32)
      std::memcpy(&b, c.data<float>() + i, 4);
    else
      std::memcpy(&b, c.data<double>() + i, 8);
    out.push_back(b);
  }
  return out;
}

bool has_temp_files(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

// A small valid checkpoint used by the corruption tests.
std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  return {{"b.bias", Tensor::from_vector(std::vector<float>{1.5f, -2.0f, 0.25f}, {3})},
          {"a.weight", Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3})},
          {"c.scale", Tensor::scalar(0.5)}};
}

// The fixture shared with tests/safetensors_reader.py (which recomputes these values).
std::vector<std::pair<std::string, Tensor>> interop_tensors() {
  std::vector<float> w(6);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = float(double(i) * 0.25 - 1.0);
  std::vector<double> v(4);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0 / double(i + 1);
  return {{"layer.weight", Tensor::from_vector(w, {2, 3})},
          {"layer.weight_t", Tensor::from_vector(w, {2, 3}).transpose(0, 1)},  // written as [3, 2]
          {"gamma", Tensor::from_vector(v, {4})},
          {"step", Tensor::scalar(7.0, DType::f64)},
          {"empty", Tensor::zeros({0, 3})}};
}

}  // namespace

// ---------------------------------------------------------------- json

TEST_CASE("json: parses every kind of value and writes it back") {
  const json::Value v = json::parse(
      " {\"a\": [1, -2, 3.5, 1e3, 0, 18446744073709551615], \"b\": {\"t\": true, \"f\": false, \"n\": null},"
      " \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\"} ");
  REQUIRE(v.is_object());
  const auto& a = v.find("a")->as_array();
  REQUIRE(a.size() == 6);
  CHECK(a[0].as_u64() == std::uint64_t(1));
  CHECK_FALSE(a[1].as_u64().has_value());
  CHECK(a[1].as_number() == -2.0);
  CHECK_FALSE(a[2].as_u64().has_value());  // fraction
  CHECK(a[2].as_number() == 3.5);
  CHECK_FALSE(a[3].as_u64().has_value());  // exponent
  CHECK(a[3].as_number() == 1000.0);
  CHECK(a[4].as_u64() == std::uint64_t(0));
  CHECK(a[5].as_u64() == std::numeric_limits<std::uint64_t>::max());
  CHECK_FALSE(json::parse("18446744073709551616").as_u64().has_value());  // beyond u64: a plain double
  CHECK(json::parse("18446744073709551616").as_number() == 18446744073709551616.0);
  const json::Value& b = *v.find("b");
  CHECK(b.find("t")->as_bool());
  CHECK_FALSE(b.find("f")->as_bool());
  CHECK(b.find("n")->is_null());
  CHECK(v.find("s")->as_string() == "q\"\\/\b\f\n\r\t\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK(v.find("missing") == nullptr);

  const std::string written = json::write(v);
  CHECK(written.find(' ') == std::string::npos);
  CHECK(written.find("18446744073709551615") != std::string::npos);
  const json::Value again = json::parse(written);
  CHECK(json::write(again) == written);
  CHECK(again.find("s")->as_string() == v.find("s")->as_string());
  CHECK(json::write(json::Value::string(std::string("\x01 \x1f", 3))) == "\"\\u0001 \\u001F\"");
  CHECK(json::write(json::Value::number(0.1)) == "0.1");
  expect_error([] { (void)json::write(json::Value::number(std::nan(""))); }, {"json", "non-finite"});
  expect_error([] { (void)json::write(json::Value::string("\xff")); }, {"json", "UTF-8"});
  expect_error([&] { (void)v.find("a")->as_string(); }, {"json", "expected a string", "got array"});
  json::Value obj = json::Value::object();
  obj.add("k", json::Value());
  expect_error([&] { obj.add("k", json::Value()); }, {"duplicate", "\"k\""});
}

TEST_CASE("json: refuses malformed documents and says where") {
  struct Bad {
    std::string text;
    std::vector<std::string> fragments;
  };
  const std::vector<Bad> cases = {
      {"", {"empty document", "at byte 0"}},
      {"   ", {"empty document"}},
      {"{", {"unexpected end of input", "at byte 1"}},
      {"{\"a\" 1}", {"expected ':'", "at byte 5", "line 1, column 6"}},
      {"{\"a\":1,}", {"a string key", "at byte 7"}},
      {"[1,]", {"expected a value", "at byte 3"}},
      {"[1 2]", {"',' or ']'"}},
      {"{\"a\":1}\n x", {"after the document", "line 2, column 2"}},
      {"01", {"leading zero", "at byte 0"}},
      {"1.", {"digit after '.'"}},
      {"1e", {"exponent"}},
      {"-", {"expected a digit"}},
      {"+1", {"expected a value"}},
      {"NaN", {"expected a value"}},
      {"1e400", {"out of range"}},
      {"tru", {"invalid literal"}},
      {"\"abc", {"unterminated string"}},
      {"\"a\\x\"", {"invalid escape \\x", "at byte 2"}},
      {"\"\\u12xy\"", {"invalid hex digit"}},
      {"\"\\u12\"", {"truncated \\u escape"}},
      {"\"\\ud800\"", {"high surrogate"}},
      {"\"\\ud800\\u0041\"", {"high surrogate"}},
      {"\"\\udc00\"", {"lone low surrogate"}},
      {"\"a\nb\"", {"control character", "0x0A"}},
      {"\"\xff\"", {"invalid UTF-8"}},
      {"\"\xc0\xaf\"", {"invalid UTF-8"}},          // overlong '/'
      {"\"\xed\xa0\x80\"", {"invalid UTF-8"}},      // encoded surrogate
      {"\"\xf4\x90\x80\x80\"", {"invalid UTF-8"}},  // above U+10FFFF
      {"\"\xe2\x82\"", {"invalid UTF-8"}},          // truncated sequence
      {"{\"k\":1,\"k\":2}", {"duplicate key \"k\"", "at byte 7"}},
      {"\xef\xbb\xbf{}", {"unexpected byte 0xEF"}},  // no BOM
  };
  for (const Bad& bad : cases) {
    CAPTURE(bad.text);
    try {
      (void)json::parse(bad.text);
      FAIL("expected crt::Error for ", bad.text);
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK(msg.rfind("json: ", 0) == 0);
      for (const std::string& f : bad.fragments) CHECK_MESSAGE(msg.find(f) != std::string::npos, msg, " lacks ", f);
    }
  }
  // Deep nesting is refused before it can exhaust the stack; the bound itself is accepted.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_error([&] { (void)json::parse(deep); }, {"nesting deeper than 64"});
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  CHECK(json::parse(ok).is_array());
  expect_error([&] { (void)json::parse(ok, 63); }, {"nesting deeper than 63"});
  CHECK(json::parse("\"\\u0000\"").as_string() == std::string(1, '\0'));
  CHECK(json::is_valid_utf8("plain \xc3\xa9"));
  CHECK_FALSE(json::is_valid_utf8("\x80"));
}

// ---------------------------------------------------------------- round trips

TEST_CASE("safetensors: round trip is bit-exact for f32, f64, rank-0, empty and non-contiguous tensors") {
  TempDir dir;
  Generator rng(1234);
  Tensor f32 = normal({3, 5}, 0.0, 1.0, rng);
  f32.set({0, 0}, -0.0);
  f32.set({0, 1}, std::numeric_limits<double>::infinity());
  f32.set({0, 2}, std::numeric_limits<float>::denorm_min());
  f32.set({0, 3}, std::numeric_limits<double>::quiet_NaN());
  Tensor f64 = normal({2, 2, 3}, 0.0, 1.0, rng, DType::f64);
  f64.set({1, 1, 2}, -std::numeric_limits<double>::denorm_min());
  Tensor scalar = Tensor::scalar(3.25, DType::f64);
  Tensor empty = Tensor::zeros({2, 0, 4});
  Tensor base = normal({4, 6}, 0.0, 1.0, rng);
  Tensor transposed = base.transpose(0, 1);            // [6, 4], non-contiguous
  Tensor strided = base.slice(1, 1, 6, 2);              // [4, 3], step 2
  Tensor offset_view = base.narrow(0, 2, 2);            // contiguous rows with an offset
  Tensor broadcast = Tensor::arange(3, DType::f64).unsqueeze(0).expand({4, 3});  // stride 0
  Tensor with_grad = normal({2, 2}, 0.0, 1.0, rng).set_requires_grad(true);
  REQUIRE_FALSE(transposed.is_contiguous());
  REQUIRE_FALSE(strided.is_contiguous());

  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"z.f32", f32},          {"a.f64", f64},         {"scalar", scalar}, {"empty", empty},
      {"t.transposed", transposed}, {"t.strided", strided}, {"t.offset", offset_view},
      {"t.broadcast", broadcast},   {"grad.param", with_grad}, {"n\xc3\xa4me \"quoted\"", f32.narrow(0, 1, 1)}};
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"step", "1200"}, {"note", "h\xc3\xa9llo \"x\"\n\ttab \\ back"}, {"", "empty key"}};
  const std::string path = dir.file("model.safetensors");
  save_safetensors(path, tensors, metadata);

  const SafetensorsFile loaded = load_safetensors(path);
  CHECK(loaded.metadata == metadata);
  CHECK(loaded.path == path);
  REQUIRE(loaded.tensors.size() == tensors.size());
  for (std::size_t i = 1; i < loaded.tensors.size(); ++i)
    CHECK(loaded.tensors[i - 1].first < loaded.tensors[i].first);  // stored sorted by name
  for (const auto& item : tensors) {
    const std::string& name = item.first;  // CAPTURE's lambda cannot name a structured binding
    const Tensor& original = item.second;
    CAPTURE(name);
    const Tensor& t = loaded.get(name);
    CHECK(t.dtype() == original.dtype());
    CHECK(t.shape() == original.shape());
    CHECK(t.is_contiguous());
    CHECK_FALSE(t.requires_grad());
    CHECK(bits_of(t) == bits_of(original));
  }
  CHECK(loaded.get("scalar").dim() == 0);
  CHECK(loaded.get("scalar").item() == 3.25);
  CHECK(std::signbit(loaded.get("z.f32").at({0, 0})));
  CHECK(std::isnan(loaded.get("z.f32").at({0, 3})));
  CHECK(loaded.contains("empty"));
  CHECK_FALSE(loaded.contains("nope"));

  // Saving again over the file replaces it; an empty checkpoint is valid too.
  save_safetensors(path, {{"only", Tensor::ones({2})}});
  const SafetensorsFile replaced = load_safetensors(path);
  REQUIRE(replaced.tensors.size() == 1);
  CHECK(replaced.metadata.empty());
  CHECK(replaced.get("only").to_vector() == std::vector<double>{1.0, 1.0});
  save_safetensors(path, {});
  CHECK(load_safetensors(path).tensors.empty());
  CHECK(read_bytes(path) == craft("{}", ""));
  CHECK_FALSE(has_temp_files(dir.path()));
}

TEST_CASE("safetensors: header bytes follow the spec layout") {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  std::vector<float> w = {1.0f, -2.5f, 3.0f, 0.125f, 5.0f, -6.0f};
  std::vector<double> g = {0.5, -1.25};
  save_safetensors(path,
                   {{"w", Tensor::from_vector(w, {2, 3})}, {"g", Tensor::from_vector(g, {2})},
                    {"c", Tensor::scalar(2.0)}},
                   {{"format", "pt"}});
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  const std::uint64_t n = read_u64_le(bytes, 0);
  CHECK(n % 8 == 0);                            // the data buffer starts 8-byte aligned
  REQUIRE(8 + n <= bytes.size());
  const std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  const std::size_t close = header.rfind('}');
  REQUIRE(close != std::string::npos);
  CHECK(close + 8 > header.size());             // at most 7 padding bytes ...
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);  // ... all spaces

  // Keys in order: metadata, then tensors sorted by name; offsets packed from 0.
  const std::size_t meta = header.find("\"__metadata__\":{\"format\":\"pt\"}");
  const std::size_t c = header.find("\"c\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}");
  const std::size_t gpos = header.find("\"g\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[4,20]}");
  const std::size_t wpos = header.find("\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[20,44]}");
  CAPTURE(header);
  REQUIRE(meta != std::string::npos);
  REQUIRE(c != std::string::npos);
  REQUIRE(gpos != std::string::npos);
  REQUIRE(wpos != std::string::npos);
  CHECK(meta < c);
  CHECK(c < gpos);
  CHECK(gpos < wpos);
  CHECK(bytes.size() == 8 + n + 44);  // no gaps, no trailing bytes

  // The data is little-endian IEEE: rebuild the values from the bytes by hand.
  const std::size_t data = 8 + std::size_t(n);
  const auto le32 = [&](std::size_t at) {
    std::uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u |= std::uint32_t(static_cast<unsigned char>(bytes[at + std::size_t(i)])) << (8 * i);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  const auto le64 = [&](std::size_t at) {
    const std::uint64_t u = read_u64_le(bytes, at);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  };
  CHECK(le32(data) == 2.0f);
  CHECK(le64(data + 4) == 0.5);
  CHECK(le64(data + 12) == -1.25);
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(le32(data + 20 + 4 * i) == w[i]);

  // The header is valid JSON for our parser too, with exactly the spec's fields.
  const json::Value root = json::parse(header);
  for (const auto& [name, entry] : root.as_object()) {
    if (name == "__metadata__") continue;
    REQUIRE(entry.as_object().size() == 3);
    CHECK(entry.find("dtype") != nullptr);
    CHECK(entry.find("shape") != nullptr);
    CHECK(entry.find("data_offsets") != nullptr);
  }
}

// ---------------------------------------------------------------- saving

TEST_CASE("safetensors: a failing save leaves the old file intact and no temporary file") {
  TempDir dir;
  const std::string path = dir.file("keep.safetensors");
  save_safetensors(path, sample_tensors(), {{"v", "1"}});
  const std::string before = read_bytes(path);

  // Missing directory.
  const std::string missing = dir.file("no_such_dir/model.safetensors");
  expect_error([&] { save_safetensors(missing, sample_tensors()); },
               {"save_safetensors", missing, "No such file or directory"});
  // Parent is a regular file (fails even as root).
  const std::string under_file = path + "/model.safetensors";
  expect_error([&] { save_safetensors(under_file, sample_tensors()); },
               {"save_safetensors", under_file, "Not a directory"});
  // Target is a non-empty directory: the temporary file is written, then rename() fails,
  // and the temporary file must be removed.
  const std::string as_dir = dir.file("occupied");
  fs::create_directories(fs::path(as_dir) / "inside");
  expect_error([&] { save_safetensors(as_dir, sample_tensors()); },
               {"save_safetensors", "cannot rename", as_dir});
  CHECK(fs::is_directory(as_dir));
  // Read-only directory (root ignores permissions, so only as another user).
  if (::geteuid() != 0) {
    const fs::path locked = dir.path() / "locked";
    fs::create_directories(locked);
    const std::string locked_file = (locked / "m.safetensors").string();
    save_safetensors(locked_file, sample_tensors());
    const std::string locked_before = read_bytes(locked_file);
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
    expect_error([&] { save_safetensors(locked_file, {{"x", Tensor::ones({1})}}); },
                 {"save_safetensors", locked_file, "Permission denied"});
    fs::permissions(locked, fs::perms::owner_all);
    CHECK(read_bytes(locked_file) == locked_before);
    CHECK_FALSE(has_temp_files(locked));
  }
  CHECK(read_bytes(path) == before);
  CHECK(load_safetensors(path).metadata.at("v") == "1");
  CHECK_FALSE(has_temp_files(dir.path()));
}

TEST_CASE("safetensors: the temporary file never follows a planted link; stale ones are removed") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::string victim = dir.file("victim.txt");
  { std::ofstream(victim) << "do not overwrite"; }
  // Links planted at every name an older writer of this process would have used.
  const std::string planted = path + ".tmp." + std::to_string(::getpid());
  REQUIRE(::symlink(victim.c_str(), planted.c_str()) == 0);
  save_safetensors(path, sample_tensors());
  CHECK(read_bytes(victim) == "do not overwrite");
  CHECK(fs::is_regular_file(fs::symlink_status(path)));  // the target is the file, not the link
  CHECK(load_safetensors(path).tensors.size() == 3);
  CHECK(fs::is_symlink(fs::symlink_status(planted)));  // left alone: its name is this live process's
  // A temporary file of a process that is gone (kill -9 mid-save) is removed by the next save;
  // one of a live process is not (pid 1 always exists).
  const std::string dead = path + ".tmp.999999999.0123456789abcdef";
  const std::string live = path + ".tmp.1.0123456789abcdef";
  const std::string other = dir.file("other.safetensors.tmp.999999999.00");
  for (const std::string& f : {dead, live, other}) std::ofstream(f) << "partial";
  save_safetensors(path, sample_tensors());
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));  // another file's temporaries are not ours to remove
}

TEST_CASE("safetensors: two concurrent writers and a reader never see a torn file") {
  TempDir dir;
  const std::string path = dir.file("shared.safetensors");
  const std::vector<std::pair<std::string, Tensor>> a = {{"w", Tensor::full({4096}, 1.0)}};
  const std::vector<std::pair<std::string, Tensor>> b = {{"w", Tensor::full({4096}, 2.0)}};
  save_safetensors(path, a);
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  auto writer = [&](const std::vector<std::pair<std::string, Tensor>>& t) {
    for (int i = 0; i < 40; ++i) save_safetensors(path, t);
  };
  std::thread reader([&] {
    while (!done.load()) {
      const std::vector<double> v = load_safetensors(path).get("w").to_vector();
      const bool whole = v.size() == 4096 && std::all_of(v.begin(), v.end(), [&](double x) { return x == v[0]; }) &&
                         (v[0] == 1.0 || v[0] == 2.0);
      if (!whole) ++torn;
      ++reads;
    }
  });
  std::thread w1(writer, std::cref(a)), w2(writer, std::cref(b));
  w1.join();
  w2.join();
  done = true;
  reader.join();
  CHECK(reads.load() > 0);
  CHECK(torn.load() == 0);
  CHECK_FALSE(has_temp_files(dir.path()));
}

TEST_CASE("safetensors: a FIFO or a directory is refused at once, not read") {
  TempDir dir;
  const std::string fifo = dir.file("pipe.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  expect_error([&] { (void)load_safetensors(fifo); }, {fifo, "not a regular file"});
  expect_error([&] { (void)load_safetensors(dir.path().string()); }, {"not a regular file"});
}

TEST_CASE("safetensors: save refuses bad names and tensors") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const Tensor t = Tensor::ones({2});
  expect_error([&] { save_safetensors(path, {{"", t}}); }, {"save_safetensors", path, "empty name"});
  expect_error([&] { save_safetensors(path, {{"a", t}, {"b", t}, {"a", t}}); },
               {"save_safetensors", path, "duplicate tensor name \"a\""});
  expect_error([&] { save_safetensors(path, {{"__metadata__", t}}); }, {"save_safetensors", "reserved"});
  expect_error([&] { save_safetensors(path, {{"bad\xff", t}}); }, {"save_safetensors", "not valid UTF-8"});
  expect_error([&] { save_safetensors(path, {{"u", Tensor()}}); }, {"save_safetensors", "\"u\"", "undefined"});
  expect_error([&] { save_safetensors(path, {{"a", t}}, {{"k", "\xc0"}}); },
               {"save_safetensors", "metadata value for \"k\"", "UTF-8"});
  expect_error([&] { save_safetensors("", {{"a", t}}); }, {"save_safetensors", "empty path"});
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(has_temp_files(dir.path()));
}

// ---------------------------------------------------------------- loading bad files

TEST_CASE("safetensors: load names the file and the problem for every defect") {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  const auto load_bytes = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    return load_safetensors(path);
  };
  const auto expect_load_error = [&](const std::string& bytes, std::initializer_list<std::string> fragments) {
    std::vector<std::string> all = {"load_safetensors", "'" + path + "'"};
    all.insert(all.end(), fragments.begin(), fragments.end());
    try {
      (void)load_bytes(bytes);
      FAIL("expected crt::Error");
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const std::string& f : all) CHECK_MESSAGE(msg.find(f) != std::string::npos, "message: ", msg, " lacks: ", f);
    }
  };
  const std::string four_floats(16, '\0');
  const std::string entry = "\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";

  // The crafted baseline is itself valid, unpadded or padded.
  CHECK(load_bytes(craft("{" + entry + "}", four_floats)).get("t").shape() == Shape{2, 2});
  CHECK(load_bytes(craft("{" + entry + "}", four_floats, false)).tensors.size() == 1);

  // File level.
  expect_error([&] { (void)load_safetensors(dir.file("missing.safetensors")); },
               {"load_safetensors", "missing.safetensors", "cannot open", "No such file or directory"});
  expect_error([&] { (void)load_safetensors(dir.path().string()); }, {"load_safetensors", "not a regular file"});
  expect_load_error("", {"0 bytes", "shorter than the 8-byte header length"});
  expect_load_error("abc", {"3 bytes", "shorter than the 8-byte"});
  expect_load_error(u64_le(100) + "{}", {"header length 100 exceeds the 2 bytes"});
  expect_load_error(u64_le(~std::uint64_t(0)) + "{}", {"header length 18446744073709551615 exceeds"});
  expect_load_error(u64_le(0), {"not valid JSON", "empty document"});

  // Header JSON.
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\" \"shape\":[]}}", ""), {"not valid JSON", "expected ',' or '}'", "at byte 20"});
  expect_load_error(craft("[1, 2]", ""), {"header is a JSON array, expected an object"});
  expect_load_error(craft("{" + entry + "," + entry + "}", four_floats), {"not valid JSON", "duplicate key \"t\""});
  expect_load_error(u64_le(2) + "{}x", {"data buffer is 1 bytes", "1 trailing bytes"});

  // Entries.
  expect_load_error(craft("{\"t\":[1]}", ""), {"entry \"t\" is a array", "expected an object"});
  expect_load_error(craft("{\"t\":{\"shape\":[2,2],\"data_offsets\":[0,16]}}", four_floats), {"\"t\" lacks \"dtype\""});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", four_floats), {"\"t\" lacks \"shape\""});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2]}}", four_floats),
                    {"\"t\" lacks \"data_offsets\""});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}}", four_floats),
                    {"\"t\" has an unknown field \"x\""});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]}}", four_floats),
                    {"unsupported dtype \"F16\"", "F32 and F64"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats),
                    {"unknown dtype \"Q7\""});
  expect_load_error(craft("{\"t\":{\"dtype\":32,\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats),
                    {"\"dtype\" is a number, expected a string"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", four_floats),
                    {"\"shape\" is a number, expected an array"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", four_floats),
                    {"shape extents must be non-negative integers"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[0,16]}}", four_floats),
                    {"shape extents must be non-negative integers"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}", four_floats),
                    {"7 dimensions", "maximum rank 6"});
  expect_load_error(
      craft("{\"t\":{\"dtype\":\"F64\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", ""),
      {"too many elements"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", four_floats),
                    {"\"data_offsets\" must be an array [begin, end]"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-1,16]}}", four_floats),
                    {"\"data_offsets\" must be non-negative integers"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16.5]}}", four_floats),
                    {"\"data_offsets\" must be non-negative integers"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1.6e1]}}", four_floats),
                    {"\"data_offsets\" must be non-negative integers"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", four_floats),
                    {"begin > end"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", four_floats),
                    {"span 16 bytes", "F32 shape [3] needs 12 bytes"});
  expect_load_error(craft("{\"\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", four_floats),
                    {"empty name"});

  // Offsets against the data buffer.
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", four_floats),
                    {"\"t\"", "[0, 32]", "beyond the data buffer of 16 bytes", "truncated"});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"u\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]}}",
                          four_floats),
                    {"\"u\"", "overlap tensor \"t\""});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", four_floats),
                    {"gap of 8 unused bytes", "\"t\""});
  expect_load_error(craft("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", four_floats),
                    {"data buffer is 16 bytes", "end at 8", "8 trailing bytes"});
  expect_load_error(craft("{}", "xyz"), {"data buffer is 3 bytes", "3 trailing bytes"});

  // Metadata.
  expect_load_error(craft("{\"__metadata__\":{\"a\":\"ok\",\"b\":3}}", ""),
                    {"metadata value for \"b\" is a number, expected a string"});
  expect_load_error(craft("{\"__metadata__\":[\"a\"]}", ""), {"\"__metadata__\" is a array"});
  const SafetensorsFile meta_ok = load_bytes(craft("{" + entry + ",\"__metadata__\":{\"k\":\"\\u00e9\"}}", four_floats));
  CHECK(meta_ok.metadata.at("k") == "\xc3\xa9");

  // Lookup of a missing tensor.
  expect_error([&] { (void)meta_ok.get("nope"); }, {"SafetensorsFile::get", "\"nope\"", path, "\"t\""});
}

TEST_CASE("safetensors: truncating or flipping bytes of a valid file is reported, never a crash") {
  TempDir dir;
  const std::string good_path = dir.file("good.safetensors");
  save_safetensors(good_path, sample_tensors(), {{"epoch", "3"}});
  const std::string good = read_bytes(good_path);
  const std::uint64_t n = read_u64_le(good, 0);
  const std::string path = dir.file("bad.safetensors");
  const auto load_expect = [&](const std::string& bytes, const std::string& fragment) {
    write_bytes(path, bytes);
    expect_error([&] { (void)load_safetensors(path); }, {"load_safetensors", path, fragment});
  };

  // Truncations at several points: inside the prefix, the header, and the data.
  load_expect(good.substr(0, 0), "shorter than the 8-byte");
  load_expect(good.substr(0, 5), "shorter than the 8-byte");
  load_expect(good.substr(0, 8), "exceeds");
  load_expect(good.substr(0, 9), "exceeds");
  load_expect(good.substr(0, 8 + n - 1), "exceeds");
  load_expect(good.substr(0, 8 + n), "beyond the data buffer");
  load_expect(good.substr(0, 8 + n + 3), "beyond the data buffer");
  load_expect(good.substr(0, good.size() - 1), "truncated");
  load_expect(good + "extra", "5 trailing bytes");

  // Flipped header bytes.
  std::string flipped = good;
  flipped[8] = '[';  // opening brace
  load_expect(flipped, "not valid JSON");
  flipped = good;
  flipped[3] = 1;  // the length prefix grows beyond the file
  load_expect(flipped, "exceeds");
  flipped = good;
  const std::size_t offsets = good.find("\"data_offsets\":[0,");
  REQUIRE(offsets != std::string::npos);
  flipped[offsets + 16] = '8';  // begin 0 -> 8: the span no longer matches the shape
  load_expect(flipped, "data_offsets [8,");
  flipped = good;
  const std::size_t dtype = good.find("\"F32\"");
  REQUIRE(dtype != std::string::npos);
  flipped[dtype + 3] = '6';  // F32 -> F36
  load_expect(flipped, "unknown dtype \"F36\"");
  flipped = good;
  flipped[8 + n - 1] = '}';  // padding space -> extra '}' after the document
  if (good[8 + n - 1] == ' ') load_expect(flipped, "after the document");

  // Sanity: the untouched file still loads.
  CHECK(load_safetensors(good_path).get("c.scale").item() == 0.5);
}

TEST_CASE("safetensors: 200 random corruptions either load or throw crt::Error") {
  TempDir dir;
  const std::string good_path = dir.file("good.safetensors");
  save_safetensors(good_path, sample_tensors(), {{"epoch", "3"}, {"name", "fuzz"}});
  const std::string good = read_bytes(good_path);
  const std::string path = dir.file("fuzz.safetensors");
  std::mt19937_64 gen(20240607);
  int loaded = 0, refused = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes = good;
    const std::size_t where = std::uniform_int_distribution<std::size_t>(0, good.size() - 1)(gen);
    if (trial % 3 == 0) {
      bytes.resize(where);  // truncation
    } else {
      const auto value = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(gen));
      if (bytes[where] == value) bytes[where] = static_cast<char>(value ^ 0x5A);
      else bytes[where] = value;
    }
    write_bytes(path, bytes);
    CAPTURE(trial);
    CAPTURE(where);
    try {
      const SafetensorsFile f = load_safetensors(path);
      ++loaded;
      for (const auto& [name, t] : f.tensors) {
        CHECK(t.is_contiguous());
        CHECK(t.numel() == t.shape().numel());
      }
    } catch (const Error& e) {
      ++refused;
      CHECK(std::string(e.what()).find("load_safetensors") == 0);
    }
  }
  CHECK(loaded + refused == 200);
  CHECK(refused > 50);  // header damage and truncations must mostly be caught
  CHECK(loaded > 0);    // flips inside the data bytes are legitimately loadable
}

// ---------------------------------------------------------------- interop (run by safetensors_reader.py)

TEST_CASE("safetensors interop: write the fixture for the Python reader" * doctest::skip()) {
  const char* out = std::getenv("CRT_SAFETENSORS_FIXTURE");
  REQUIRE_MESSAGE(out != nullptr, "set CRT_SAFETENSORS_FIXTURE to the output path");
  save_safetensors(out, interop_tensors(), {{"format", "crt"}, {"note", "h\xc3\xa9llo \"q\"\n"}});
  CHECK(load_safetensors(out).tensors.size() == interop_tensors().size());
}

TEST_CASE("safetensors interop: load the file written by the Python reader" * doctest::skip()) {
  const char* in = std::getenv("CRT_SAFETENSORS_PYFILE");
  REQUIRE_MESSAGE(in != nullptr, "set CRT_SAFETENSORS_PYFILE to the input path");
  const SafetensorsFile f = load_safetensors(in);
  // Must match write_python_file() in tests/safetensors_reader.py.
  REQUIRE(f.tensors.size() == 3);
  CHECK(f.metadata.at("writer") == "python");
  CHECK(f.metadata.at("caf\xc3\xa9") == "\xf0\x9f\x98\x80");
  const Tensor& w = f.get("w\xc3\xa9ight");
  CHECK(w.dtype() == DType::f32);
  CHECK(w.shape() == Shape{2, 2});
  CHECK(w.to_vector() == std::vector<double>{0.5, -1.5, 2.25, 1e-3f});
  const Tensor& d = f.get("double");
  CHECK(d.dtype() == DType::f64);
  CHECK(d.shape() == Shape{3});
  CHECK(d.to_vector() == std::vector<double>{1.0 / 3.0, -2.0, 1e300});
  const Tensor& s = f.get("s");
  CHECK(s.dim() == 0);
  CHECK(s.item() == -4.0);
}
