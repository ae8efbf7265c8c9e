// safetensors save/load. Save: JSON header padded to 8 bytes, tensors sorted by name and packed
// without gaps, written to a temporary file created exclusively next to <path>
// ("<path>.tmp.<pid>.<random>"), fsynced, renamed over <path>, and the directory fsynced. Load: every field
// and offset is checked against the file size before any tensor data is read.
#include "engine/safetensors.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include "engine/error.hpp"
#include "engine/json.hpp"

namespace crt {

namespace {

constexpr const char* kMetadataKey = "__metadata__";
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t(100) << 20;  // as the reference readers
constexpr std::size_t kChunkBytes = std::size_t(1) << 20;              // write/swap granularity

const char* safetensors_dtype_name(DType dtype) { return dtype == DType::f32 ? "F32" : "F64"; }

bool is_known_foreign_dtype(const std::string& name) {
  static const char* const kOthers[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16", "U16",
                                        "F16",  "BF16", "I32", "U32",     "I64",     "U64", "F4",
                                        "F6_E2M3", "F6_E3M2", "F8_E8M0", "C64"};
  return std::find_if(std::begin(kOthers), std::end(kOthers), [&](const char* d) { return name == d; }) !=
         std::end(kOthers);
}

void store_u64_le(unsigned char* out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

std::uint64_t load_u64_le(const unsigned char* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= std::uint64_t(in[i]) << (8 * i);
  return value;
}

// Reverses the bytes of each element in place; only needed on big-endian hosts.
void swap_elements(unsigned char* data, std::size_t bytes, std::size_t element_size) {
  for (std::size_t i = 0; i + element_size <= bytes; i += element_size) std::reverse(data + i, data + i + element_size);
}

std::string os_error(int err) { return std::strerror(err); }

// Owns a file descriptor; close() reports the error that a destructor would have to swallow.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Unlinks the temporary file unless release() was called (after a successful rename).
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : path_(std::move(path)) {}
  ~TempFileGuard() {
    if (armed_) ::unlink(path_.c_str());
  }
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  void release() { armed_ = false; }

 private:
  std::string path_;
  bool armed_ = true;
};

// Temporary files are "<path>.tmp.<pid>.<random>"; a writer killed mid-save leaves one behind.
constexpr int kTempNameAttempts = 16;  // fresh names tried before giving up on EEXIST

std::string temp_name(const std::string& path) {
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t mix = std::uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                            (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull) ^ std::random_device{}();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(mix));
  return path + ".tmp." + std::to_string(::getpid()) + "." + suffix;
}

// Removes "<path>.tmp.<pid>.*" (and the older "<path>.tmp.<pid>") whose writing process is gone.
void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const std::size_t digits = rest.find_first_not_of("0123456789");
    if (digits == 0 || rest.empty() || (digits != std::string::npos && rest[digits] != '.')) continue;
    const long pid = std::strtol(rest.substr(0, digits).c_str(), nullptr, 10);
    if (pid <= 0 || pid == long(::getpid())) continue;
    if (::kill(pid_t(pid), 0) != 0 && errno == ESRCH) ::unlink(it->path().c_str());
  }
}

void write_all(int fd, const unsigned char* data, std::size_t bytes, const std::string& path,
               const std::string& temp_path) {
  while (bytes > 0) {
    const ssize_t n = ::write(fd, data, std::min(bytes, kChunkBytes));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      throw Error(format_error("save_safetensors", "cannot write '", path, "' (temporary file '", temp_path,
                               "'): ", os_error(err)));
    }
    data += n;
    bytes -= std::size_t(n);
  }
}

// Writes `bytes` of host-order elements as little-endian.
void write_elements(int fd, const unsigned char* data, std::size_t bytes, std::size_t element_size,
                    const std::string& path, const std::string& temp_path) {
  if constexpr (std::endian::native == std::endian::little) {
    write_all(fd, data, bytes, path, temp_path);
  } else {
    std::vector<unsigned char> chunk;
    for (std::size_t done = 0; done < bytes;) {
      const std::size_t n = std::min(bytes - done, kChunkBytes);
      chunk.assign(data + done, data + done + n);
      swap_elements(chunk.data(), n, element_size);
      write_all(fd, chunk.data(), n, path, temp_path);
      done += n;
    }
  }
}

template <class... Parts>
[[noreturn]] void load_fail(const std::string& path, Parts&&... parts) {
  throw Error(format_error("load_safetensors", "'", path, "': ", std::forward<Parts>(parts)...));
}

// Reads exactly `bytes` at `offset`; a short file is reported as truncated.
void read_exact(int fd, unsigned char* out, std::size_t bytes, std::uint64_t offset, const std::string& path) {
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, out, std::min(bytes, kChunkBytes), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) load_fail(path, "read error at byte ", offset, ": ", os_error(errno));
    if (n == 0) load_fail(path, "unexpected end of file at byte ", offset, " (file truncated while reading?)");
    out += n;
    bytes -= std::size_t(n);
    offset += std::uint64_t(n);
  }
}

std::string shape_text(const std::vector<std::uint64_t>& dims) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << ']';
  return os.str();
}

struct HeaderEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// Validates one tensor entry of the header: exactly dtype/shape/data_offsets, a supported dtype,
// non-negative integer extents and offsets whose span equals the tensor's byte size.
HeaderEntry parse_entry(const std::string& path, const std::string& name, const json::Value& value) {
  HeaderEntry entry;
  entry.name = name;
  if (name.empty()) load_fail(path, "a tensor has an empty name");
  if (!value.is_object())
    load_fail(path, "entry \"", name, "\" is a ", json::kind_name(value.kind()),
              ", expected an object with \"dtype\", \"shape\" and \"data_offsets\"");
  for (const auto& member : value.as_object()) {
    if (member.first != "dtype" && member.first != "shape" && member.first != "data_offsets")
      load_fail(path, "entry \"", name, "\" has an unknown field \"", member.first, "\"");
  }
  const json::Value* dtype = value.find("dtype");
  const json::Value* shape = value.find("shape");
  const json::Value* offsets = value.find("data_offsets");
  if (!dtype) load_fail(path, "entry \"", name, "\" lacks \"dtype\"");
  if (!shape) load_fail(path, "entry \"", name, "\" lacks \"shape\"");
  if (!offsets) load_fail(path, "entry \"", name, "\" lacks \"data_offsets\"");

  if (!dtype->is_string())
    load_fail(path, "entry \"", name, "\": \"dtype\" is a ", json::kind_name(dtype->kind()), ", expected a string");
  const std::string& dtype_text = dtype->as_string();
  if (dtype_text == "F32") {
    entry.dtype = DType::f32;
  } else if (dtype_text == "F64") {
    entry.dtype = DType::f64;
  } else if (is_known_foreign_dtype(dtype_text)) {
    load_fail(path, "entry \"", name, "\" has unsupported dtype \"", dtype_text, "\" (this engine loads F32 and F64)");
  } else {
    load_fail(path, "entry \"", name, "\" has unknown dtype \"", dtype_text, "\" (this engine loads F32 and F64)");
  }

  if (!shape->is_array())
    load_fail(path, "entry \"", name, "\": \"shape\" is a ", json::kind_name(shape->kind()), ", expected an array");
  const auto& dims = shape->as_array();
  if (dims.size() > std::size_t(kMaxRank))
    load_fail(path, "entry \"", name, "\": shape has ", dims.size(), " dimensions, above the maximum rank ", kMaxRank);
  std::vector<std::uint64_t> extents;
  // Product of the extents with zeros counted as one: bounds every stride, so no overflow later.
  std::uint64_t stride_bound = 1;
  std::uint64_t numel = 1;
  const std::uint64_t element_size = dtype_size(entry.dtype);
  const std::uint64_t limit = std::uint64_t(std::numeric_limits<std::int64_t>::max()) / element_size;
  for (const json::Value& d : dims) {
    const auto extent = d.as_u64();
    if (!extent) load_fail(path, "entry \"", name, "\": shape extents must be non-negative integers");
    extents.push_back(*extent);
  }
  for (const std::uint64_t extent : extents) {
    const std::uint64_t factor = std::max<std::uint64_t>(extent, 1);
    if (stride_bound > limit / factor)
      load_fail(path, "entry \"", name, "\": shape ", shape_text(extents), " has too many elements");
    stride_bound *= factor;
    numel *= extent;
    entry.shape.push_back(static_cast<std::int64_t>(extent));
  }

  if (!offsets->is_array() || offsets->as_array().size() != 2)
    load_fail(path, "entry \"", name, "\": \"data_offsets\" must be an array [begin, end]");
  const auto begin = offsets->as_array()[0].as_u64();
  const auto end = offsets->as_array()[1].as_u64();
  if (!begin || !end) load_fail(path, "entry \"", name, "\": \"data_offsets\" must be non-negative integers");
  if (*begin > *end) load_fail(path, "entry \"", name, "\": data_offsets [", *begin, ", ", *end, "] has begin > end");
  entry.begin = *begin;
  entry.end = *end;
  const std::uint64_t bytes = numel * element_size;  // <= int64 max by the bound above
  if (*end - *begin != bytes)
    load_fail(path, "entry \"", name, "\": data_offsets [", *begin, ", ", *end, "] span ", *end - *begin,
              " bytes but ", dtype_text, " shape ", shape_text(extents), " needs ", bytes, " bytes");
  return entry;
}

// Parses and validates a safetensors image of `file_size` bytes, read through `read_at(out,
// bytes, offset)` (which must fill `out` exactly or throw); errors name `path`.
SafetensorsFile parse_safetensors(const std::string& path, std::uint64_t file_size,
                                  const std::function<void(unsigned char*, std::size_t, std::uint64_t)>& read_at) {
  if (file_size < 8)
    load_fail(path, "file is ", file_size, " bytes, shorter than the 8-byte header length prefix");
  unsigned char prefix[8];
  read_at(prefix, 8, 0);
  const std::uint64_t header_size = load_u64_le(prefix);
  if (header_size > file_size - 8)
    load_fail(path, "header length ", header_size, " exceeds the ", file_size - 8,
              " bytes after the length prefix (truncated or not a safetensors file)");
  if (header_size > kMaxHeaderBytes)
    load_fail(path, "header length ", header_size, " is above the limit of ", kMaxHeaderBytes, " bytes");
  std::string header(std::size_t(header_size), '\0');
  read_at(reinterpret_cast<unsigned char*>(header.data()), header.size(), 8);

  json::Value root;
  try {
    root = json::parse(header);
  } catch (const Error& e) {
    load_fail(path, "header is not valid JSON (", e.what(), ")");
  }
  if (!root.is_object()) load_fail(path, "header is a JSON ", json::kind_name(root.kind()), ", expected an object");

  SafetensorsFile result;
  result.path = path;
  std::vector<HeaderEntry> entries;
  for (const auto& [key, value] : root.as_object()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        load_fail(path, "\"", kMetadataKey, "\" is a ", json::kind_name(value.kind()),
                  ", expected an object of strings");
      for (const auto& [meta_key, meta_value] : value.as_object()) {
        if (!meta_value.is_string())
          load_fail(path, "metadata value for \"", meta_key, "\" is a ", json::kind_name(meta_value.kind()),
                    ", expected a string");
        result.metadata[meta_key] = meta_value.as_string();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value));
  }

  // The data buffer must be covered exactly: in range, no overlap, no gap, nothing after.
  const std::uint64_t buffer_size = file_size - 8 - header_size;
  for (const HeaderEntry& e : entries) {
    if (e.end > buffer_size)
      load_fail(path, "tensor \"", e.name, "\" data_offsets [", e.begin, ", ", e.end,
                "] extend beyond the data buffer of ", buffer_size, " bytes (file truncated?)");
  }
  std::vector<const HeaderEntry*> by_offset;
  for (const HeaderEntry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const HeaderEntry* a, const HeaderEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  const HeaderEntry* previous = nullptr;
  for (const HeaderEntry* e : by_offset) {
    if (e->begin < covered)
      load_fail(path, "tensor \"", e->name, "\" data_offsets [", e->begin, ", ", e->end, "] overlap tensor \"",
                previous->name, "\" [", previous->begin, ", ", previous->end, "]");
    if (e->begin > covered)
      load_fail(path, "gap of ", e->begin - covered, " unused bytes before tensor \"", e->name, "\" at offset ",
                covered, " (data_offsets must be contiguous)");
    covered = e->end;
    previous = e;
  }
  if (covered != buffer_size)
    load_fail(path, "data buffer is ", buffer_size, " bytes but the tensors end at ", covered, ": ",
              buffer_size - covered, " trailing bytes");

  const std::uint64_t data_start = 8 + header_size;
  for (const HeaderEntry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    const std::size_t bytes = std::size_t(e.end - e.begin);
    auto* out = static_cast<unsigned char*>(t.impl().storage->data());
    read_at(out, bytes, data_start + e.begin);
    if constexpr (std::endian::native != std::endian::little) swap_elements(out, bytes, dtype_size(e.dtype));
    result.tensors.emplace_back(e.name, std::move(t));
  }
  return result;
}

}  // namespace

namespace {

// The 8-byte length and the JSON header of a file holding `tensors` (sorted by name into
// `order`), checked as save_safetensors documents; `where` names the destination in errors.
struct EncodedHeader {
  std::vector<unsigned char> prefix;
  std::vector<const std::pair<std::string, Tensor>*> order;
};

EncodedHeader encode_header(const char* op, const std::string& where,
                            const std::vector<std::pair<std::string, Tensor>>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  EncodedHeader out;
  // Validate names and sort by them (byte order).
  std::vector<const std::pair<std::string, Tensor>*>& order = out.order;
  order.reserve(tensors.size());
  for (const auto& item : tensors) {
    require(!item.first.empty(), op, "'", where, "': a tensor has an empty name");
    require(item.first != kMetadataKey, op, "'", where, "': the name \"", kMetadataKey, "\" is reserved");
    require(json::is_valid_utf8(item.first), op, "'", where, "': tensor name \"", item.first, "\" is not valid UTF-8");
    require(item.second.defined(), op, "'", where, "': tensor \"", item.first, "\" is undefined");
    order.push_back(&item);
  }
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  for (std::size_t i = 1; i < order.size(); ++i)
    require(order[i - 1]->first != order[i]->first, op, "'", where, "': duplicate tensor name \"", order[i]->first,
            "\"");
  for (const auto& [key, value] : metadata) {
    require(json::is_valid_utf8(key), op, "'", where, "': metadata key \"", key, "\" is not valid UTF-8");
    require(json::is_valid_utf8(value), op, "'", where, "': metadata value for \"", key, "\" is not valid UTF-8");
  }

  // Header: metadata first, then the tensors in name order, packed from offset 0.
  json::Value::Object members;
  members.reserve(order.size() + 1);
  if (!metadata.empty()) {
    json::Value::Object meta;
    for (const auto& [key, value] : metadata) meta.emplace_back(key, json::Value::string(value));
    members.emplace_back(kMetadataKey, json::Value::object(std::move(meta)));
  }
  std::uint64_t offset = 0;
  for (const auto* item : order) {
    const Tensor& t = item->second;
    json::Value::Array dims;
    for (const std::int64_t d : t.shape()) dims.push_back(json::Value::integer(std::uint64_t(d)));
    const std::uint64_t bytes = std::uint64_t(t.numel()) * dtype_size(t.dtype());
    json::Value entry = json::Value::object();
    entry.add("dtype", json::Value::string(safetensors_dtype_name(t.dtype())));
    entry.add("shape", json::Value::array(std::move(dims)));
    entry.add("data_offsets", json::Value::array({json::Value::integer(offset), json::Value::integer(offset + bytes)}));
    members.emplace_back(item->first, std::move(entry));
    offset += bytes;
  }
  std::string header = json::write(json::Value::object(std::move(members)));
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  out.prefix.resize(8 + header.size());
  store_u64_le(out.prefix.data(), header.size());
  std::memcpy(out.prefix.data() + 8, header.data(), header.size());
  return out;
}

}  // namespace

std::string safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  const EncodedHeader h = encode_header("safetensors_bytes", "(in memory)", tensors, metadata);
  std::string out(h.prefix.begin(), h.prefix.end());
  for (const auto* item : h.order) {
    const Tensor data = item->second.detach().contiguous();
    const std::size_t element_size = dtype_size(data.dtype());
    const std::size_t bytes = std::size_t(data.numel()) * element_size;
    if (bytes == 0) continue;
    const std::size_t at = out.size();
    out.resize(at + bytes);
    std::memcpy(out.data() + at, static_cast<const unsigned char*>(data.impl().storage->data()) +
                                     std::size_t(data.offset()) * element_size, bytes);
    if constexpr (std::endian::native != std::endian::little)
      swap_elements(reinterpret_cast<unsigned char*>(out.data() + at), bytes, element_size);
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const char* op = "save_safetensors";
  require(!path.empty(), op, "empty path");
  const EncodedHeader encoded = encode_header(op, path, tensors, metadata);
  const std::vector<unsigned char>& prefix = encoded.prefix;
  const auto& order = encoded.order;

  // Temporary file next to the target, so that rename() is atomic: created exclusively under a
  // fresh random name, never through a link planted in its place.
  remove_stale_temporaries(path);
  std::string temp_path;
  FileDescriptor file(-1);
  for (int attempt = 0; attempt < kTempNameAttempts && !file.valid(); ++attempt) {
    temp_path = temp_name(path);
    file = FileDescriptor(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
    if (!file.valid() && errno != EEXIST) break;
  }
  if (!file.valid())
    throw Error(format_error(op, "cannot create temporary file '", temp_path, "' for '", path, "': ", os_error(errno)));
  TempFileGuard guard(temp_path);

  write_all(file.get(), prefix.data(), prefix.size(), path, temp_path);
  for (const auto* item : order) {
    const Tensor data = item->second.detach().contiguous();
    const std::size_t element_size = dtype_size(data.dtype());
    const std::size_t bytes = std::size_t(data.numel()) * element_size;
    if (bytes == 0) continue;
    const auto* base = static_cast<const unsigned char*>(data.impl().storage->data()) +
                       std::size_t(data.offset()) * element_size;
    write_elements(file.get(), base, bytes, element_size, path, temp_path);
  }
  if (::fsync(file.get()) != 0)
    throw Error(format_error(op, "cannot fsync '", temp_path, "' for '", path, "': ", os_error(errno)));
  if (file.close() != 0)
    throw Error(format_error(op, "cannot close '", temp_path, "' for '", path, "': ", os_error(errno)));
  if (::rename(temp_path.c_str(), path.c_str()) != 0)
    throw Error(format_error(op, "cannot rename '", temp_path, "' to '", path, "': ", os_error(errno)));
  guard.release();

  // Make the rename itself durable. Some file systems cannot fsync directories (EINVAL).
  std::string directory = std::filesystem::path(path).parent_path().string();
  if (directory.empty()) directory = ".";
  FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid())
    throw Error(format_error(op, "saved '", path, "' but cannot open its directory '", directory,
                             "' to fsync it: ", os_error(errno)));
  if (::fsync(dir.get()) != 0 && errno != EINVAL)
    throw Error(format_error(op, "saved '", path, "' but cannot fsync its directory '", directory, "': ",
                             os_error(errno)));
}

SafetensorsFile load_safetensors(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not regular.
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!file.valid()) load_fail(path, "cannot open: ", os_error(errno));
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) load_fail(path, "cannot stat: ", os_error(errno));
  if (!S_ISREG(info.st_mode)) load_fail(path, "not a regular file");
  ::fcntl(file.get(), F_SETFL, ::fcntl(file.get(), F_GETFL) & ~O_NONBLOCK);
  const auto file_size = static_cast<std::uint64_t>(info.st_size);

  return parse_safetensors(path, file_size, [&](unsigned char* out, std::size_t bytes, std::uint64_t offset) {
    read_exact(file.get(), out, bytes, offset, path);
  });
}

SafetensorsFile parse_safetensors_bytes(std::string_view bytes, const std::string& name) {
  return parse_safetensors(name, bytes.size(), [&](unsigned char* out, std::size_t n, std::uint64_t offset) {
    // The parser checks every extent against the size first, so this holds for any input.
    if (offset > bytes.size() || n > bytes.size() - offset)
      load_fail(name, "read of ", n, " bytes at ", offset, " beyond the ", bytes.size(), "-byte image");
    std::memcpy(out, bytes.data() + offset, n);
  });
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
  for (const auto& item : tensors)
    if (item.first == name) return item.second;
  std::ostringstream known;
  for (std::size_t i = 0; i < tensors.size() && i < 8; ++i) known << (i ? ", " : "") << '"' << tensors[i].first << '"';
  if (tensors.size() > 8) known << ", ...";
  throw Error(format_error("SafetensorsFile::get", "no tensor \"", name, "\" in '", path, "' (", tensors.size(),
                           " tensors: ", known.str(), ")"));
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const auto& item) { return item.first == name; });
}

}  // namespace crt
