// ModelConfig presets, validation and metadata round trip (see config.hpp).
#include "crt/config.hpp"

#include <unistd.h>

#include <charconv>
#include <sstream>

#include "engine/error.hpp"

namespace crt::model {

namespace {

template <class Enum>
struct EnumName {
  Enum value;
  const char* name;
};

constexpr EnumName<ModelKind> kKinds[] = {
    {ModelKind::transformer, "transformer"}, {ModelKind::transformer_xl, "xl"}, {ModelKind::crt, "crt"}};
constexpr EnumName<PositionEncoding> kPositions[] = {
    {PositionEncoding::sinusoidal, "sinusoidal"}, {PositionEncoding::learned, "learned"},
    {PositionEncoding::relative, "relative"},     {PositionEncoding::rnn, "rnn"},
    {PositionEncoding::none, "none"}};
constexpr EnumName<MemoryKind> kMemories[] = {
    {MemoryKind::none, "none"}, {MemoryKind::cache, "cache"}, {MemoryKind::rnn, "rnn"}};
constexpr EnumName<RnnCell> kCells[] = {{RnnCell::gru, "gru"}, {RnnCell::ncgru, "ncgru"}};

template <class Enum, std::size_t N>
const char* name_of(const EnumName<Enum> (&table)[N], Enum v) {
  for (const auto& e : table)
    if (e.value == v) return e.name;
  return "?";
}

template <class Enum, std::size_t N>
Enum parse_enum(const EnumName<Enum> (&table)[N], const std::string& s, const char* what) {
  std::string choices;
  for (const auto& e : table) {
    if (s == e.name) return e.value;
    choices += (choices.empty() ? "" : ", ") + std::string(e.name);
  }
  throw Error(format_error("ModelConfig", "unknown ", what, " '", s, "' (expected one of: ",
                           choices, ")"));
}

std::int64_t parse_int(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  require(it != meta.end(), "ModelConfig", "checkpoint metadata lacks '", key, "'");
  std::int64_t v = 0;
  const auto& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  require(ec == std::errc() && p == s.data() + s.size(), "ModelConfig", "metadata '", key,
          "' = '", s, "' is not an integer");
  return v;
}

double parse_double(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  require(it != meta.end(), "ModelConfig", "checkpoint metadata lacks '", key, "'");
  std::istringstream is(it->second);
  double v = 0;
  is >> v;
  require(!is.fail() && is.eof(), "ModelConfig", "metadata '", key, "' = '", it->second,
          "' is not a number");
  return v;
}

const std::string& get(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  require(it != meta.end(), "ModelConfig", "checkpoint metadata lacks '", key, "'");
  return it->second;
}

std::string format_double(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

}  // namespace

const char* to_string(ModelKind k) { return name_of(kKinds, k); }
const char* to_string(PositionEncoding p) { return name_of(kPositions, p); }
const char* to_string(MemoryKind m) { return name_of(kMemories, m); }
const char* to_string(RnnCell c) { return name_of(kCells, c); }
ModelKind parse_model_kind(const std::string& s) { return parse_enum(kKinds, s, "model kind"); }
PositionEncoding parse_position(const std::string& s) {
  return parse_enum(kPositions, s, "position encoding");
}
MemoryKind parse_memory(const std::string& s) { return parse_enum(kMemories, s, "memory kind"); }
RnnCell parse_rnn_cell(const std::string& s) { return parse_enum(kCells, s, "rnn cell"); }

ModelConfig preset(ModelKind kind, std::int64_t n_layer, std::int64_t d_model,
                   std::int64_t n_head, std::int64_t d_inner, std::int64_t vocab_size) {
  ModelConfig c;
  c.kind = kind;
  c.n_layer = n_layer;
  c.d_model = d_model;
  c.n_head = n_head;
  c.d_head = n_head > 0 ? d_model / n_head : 0;
  c.d_inner = d_inner;
  c.vocab_size = vocab_size;
  switch (kind) {
    case ModelKind::transformer:
      c.position = PositionEncoding::sinusoidal;
      c.memory = MemoryKind::none;
      break;
    case ModelKind::transformer_xl:
      c.position = PositionEncoding::relative;
      c.memory = MemoryKind::cache;
      break;
    case ModelKind::crt:
      c.position = PositionEncoding::rnn;
      c.memory = MemoryKind::rnn;
      break;
  }
  return c;
}

ModelConfig wt103_base(ModelKind kind) {
  ModelConfig c = preset(kind, 16, 410, 10, 2100, 267735);
  c.d_head = 41;
  c.adaptive_cutoffs = {20000, 40000, 200000};
  c.seg_len = 150;
  c.mem_len = 150;
  return c;
}

std::string human_bytes(double bytes) {
  std::ostringstream os;
  os.precision(3);
  if (bytes >= 1024.0 * 1024 * 1024) os << bytes / (1024.0 * 1024 * 1024) << " GiB";
  else os << bytes / (1024.0 * 1024) << " MiB";
  return os.str();
}

double memory_limit_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 1e18;
}

void ModelConfig::validate() const {
  const char* op = "ModelConfig";
  require(vocab_size >= 2, op, "vocab_size must be >= 2, got ", vocab_size);
  require(n_layer >= 1, op, "n_layer must be >= 1, got ", n_layer);
  require(d_model >= 1 && n_head >= 1 && d_head >= 1 && d_inner >= 1, op,
          "d_model, n_head, d_head and d_inner must be positive (got ", d_model, ", ", n_head,
          ", ", d_head, ", ", d_inner, ")");
  require(seg_len >= 1, op, "seg_len must be >= 1, got ", seg_len);
  require(memory != MemoryKind::cache || mem_len >= 1, op,
          "a cache memory needs mem_len >= 1, got ", mem_len);
  require(memory != MemoryKind::cache || position == PositionEncoding::relative, op,
          "a Transformer-XL cache needs relative positions (position=relative)");
  require(dropout >= 0 && dropout < 1 && emb_dropout >= 0 && emb_dropout < 1 && dropatt >= 0 &&
              dropatt < 1,
          op, "dropout rates must be in [0, 1)");
  require(init_std > 0, op, "init_std must be positive");
  std::int64_t prev = 0;
  for (std::int64_t c : adaptive_cutoffs) {
    require(c > prev && c < vocab_size, op, "adaptive cutoffs must increase strictly within (0, ",
            vocab_size, "), got ", c, " after ", prev);
    prev = c;
  }
  require(ncgru_neumann_order >= 1 && ncgru_neumann_order <= 3, op,
          "ncgru_neumann_order must be 1, 2 or 3, got ", ncgru_neumann_order);
  require(ncgru_exact_every >= 1, op, "ncgru_exact_every must be >= 1");
  require(ncgru_negative_entries >= -1 && ncgru_negative_entries <= d_model, op,
          "ncgru_negative_entries must be in [0, d_model = ", d_model, "] (or -1 for 10%), got ",
          ncgru_negative_entries);
  require(mem_len >= 0, op, "mem_len must be >= 0, got ", mem_len);
  // Sizes before any allocation: a configuration that cannot fit fails here, naming the
  // fields and the bytes, instead of in the allocator (or after minutes of filling memory).
  require(n_layer <= kMaxLayers && d_model <= kMaxWidth && n_head <= kMaxWidth &&
              d_head <= kMaxWidth && d_inner <= kMaxWidth && seg_len <= kMaxSegment &&
              mem_len <= kMaxSegment,
          op, "n_layer ", n_layer, ", d_model ", d_model, ", n_head ", n_head, ", d_head ", d_head,
          ", d_inner ", d_inner, ", seg_len ", seg_len, " or mem_len ", mem_len,
          " is beyond the supported range (layers <= ", kMaxLayers, ", widths <= ", kMaxWidth,
          ", segment and cache lengths <= ", kMaxSegment, ")");
  const double bytes = model_bytes_estimate();
  const double limit = memory_limit_bytes();
  require(bytes <= limit, op, "the model would need about ", human_bytes(bytes),
          " for its weights (vocab_size ", vocab_size, ", d_model ", d_model, ", n_layer ", n_layer,
          ", d_inner ", d_inner, ", seg_len + mem_len ", seg_len + mem_len, "), more than the ",
          human_bytes(limit), " of memory here");
}

double ModelConfig::model_bytes_estimate() const {
  const double d = double(d_model), w = double(n_head) * double(d_head), f = double(d_inner);
  const double per_layer = 4 * d * w + 2 * d * f + w * d;  // q, k, v, out, feed-forward, r_net
  const double rnns = 2 * 6 * d * d;
  const double tables = (double(seg_len) + double(mem_len)) * d;  // position tables
  const double params = double(vocab_size) * d * (tie_embeddings ? 1 : 2) + double(n_layer) * per_layer +
                        rnns + tables;
  return params * 4.0;  // f32
}

std::map<std::string, std::string> ModelConfig::to_metadata() const {
  std::map<std::string, std::string> m;
  m["crt.kind"] = to_string(kind);
  m["crt.vocab_size"] = std::to_string(vocab_size);
  m["crt.n_layer"] = std::to_string(n_layer);
  m["crt.d_model"] = std::to_string(d_model);
  m["crt.n_head"] = std::to_string(n_head);
  m["crt.d_head"] = std::to_string(d_head);
  m["crt.d_inner"] = std::to_string(d_inner);
  m["crt.seg_len"] = std::to_string(seg_len);
  m["crt.mem_len"] = std::to_string(mem_len);
  m["crt.position"] = to_string(position);
  m["crt.memory"] = to_string(memory);
  m["crt.rnn_cell"] = to_string(rnn_cell);
  m["crt.pos_rnn_residual"] = pos_rnn_residual ? "1" : "0";
  m["crt.pos_rnn_carry"] = pos_rnn_carry ? "1" : "0";
  m["crt.pre_ln"] = pre_ln ? "1" : "0";
  m["crt.tie_embeddings"] = tie_embeddings ? "1" : "0";
  std::string cut;
  for (std::int64_t c : adaptive_cutoffs) {
    if (!cut.empty()) cut += ',';
    cut += std::to_string(c);
  }
  m["crt.adaptive_cutoffs"] = cut;
  m["crt.dropout"] = format_double(dropout);
  m["crt.dropatt"] = format_double(dropatt);
  m["crt.emb_dropout"] = format_double(emb_dropout);
  m["crt.init_std"] = format_double(init_std);
  m["crt.ncgru_negative_entries"] = std::to_string(ncgru_negative_entries);
  m["crt.ncgru_neumann_order"] = std::to_string(ncgru_neumann_order);
  m["crt.ncgru_exact_every"] = std::to_string(ncgru_exact_every);
  return m;
}

namespace {
// A 0/1 metadata flag; anything else is refused, naming the key.
bool parse_flag(const std::map<std::string, std::string>& meta, const std::string& key) {
  const std::string& v = get(meta, key);
  require(v == "0" || v == "1", "ModelConfig", "metadata '", key, "' must be 0 or 1, got '", v, "'");
  return v == "1";
}
}  // namespace

ModelConfig ModelConfig::from_metadata(const std::map<std::string, std::string>& meta) {
  ModelConfig c;
  c.kind = parse_model_kind(get(meta, "crt.kind"));
  c.vocab_size = parse_int(meta, "crt.vocab_size");
  c.n_layer = parse_int(meta, "crt.n_layer");
  c.d_model = parse_int(meta, "crt.d_model");
  c.n_head = parse_int(meta, "crt.n_head");
  c.d_head = parse_int(meta, "crt.d_head");
  c.d_inner = parse_int(meta, "crt.d_inner");
  c.seg_len = parse_int(meta, "crt.seg_len");
  c.mem_len = parse_int(meta, "crt.mem_len");
  c.position = parse_position(get(meta, "crt.position"));
  c.memory = parse_memory(get(meta, "crt.memory"));
  c.rnn_cell = parse_rnn_cell(get(meta, "crt.rnn_cell"));
  c.pos_rnn_residual = parse_flag(meta, "crt.pos_rnn_residual");
  c.pos_rnn_carry = parse_flag(meta, "crt.pos_rnn_carry");
  c.pre_ln = parse_flag(meta, "crt.pre_ln");
  c.tie_embeddings = parse_flag(meta, "crt.tie_embeddings");
  c.adaptive_cutoffs.clear();
  const std::string& cut = get(meta, "crt.adaptive_cutoffs");
  std::size_t pos = 0;
  while (pos < cut.size()) {
    std::size_t comma = cut.find(',', pos);
    if (comma == std::string::npos) comma = cut.size();
    const std::string item = cut.substr(pos, comma - pos);
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    require(ec == std::errc() && p == item.data() + item.size(), "ModelConfig",
            "metadata 'crt.adaptive_cutoffs' has a bad entry '", item, "'");
    c.adaptive_cutoffs.push_back(v);
    pos = comma + 1;
  }
  c.dropout = parse_double(meta, "crt.dropout");
  c.dropatt = parse_double(meta, "crt.dropatt");
  c.emb_dropout = parse_double(meta, "crt.emb_dropout");
  c.init_std = parse_double(meta, "crt.init_std");
  c.ncgru_negative_entries = parse_int(meta, "crt.ncgru_negative_entries");
  c.ncgru_neumann_order = parse_int(meta, "crt.ncgru_neumann_order");
  c.ncgru_exact_every = parse_int(meta, "crt.ncgru_exact_every");
  c.validate();
  return c;
}

std::string ModelConfig::summary() const {
  std::ostringstream os;
  os << to_string(kind) << ": " << n_layer << " layers, d_model " << d_model << ", " << n_head
     << " heads x " << d_head << ", d_inner " << d_inner << ", vocab " << vocab_size
     << ", segment " << seg_len << ", position " << to_string(position) << ", memory "
     << to_string(memory);
  if (memory == MemoryKind::cache) os << " (" << mem_len << ")";
  if (memory == MemoryKind::rnn || position == PositionEncoding::rnn)
    os << ", rnn " << to_string(rnn_cell);
  os << (pre_ln ? ", pre-LN" : ", post-LN");
  if (!adaptive_cutoffs.empty()) {
    os << ", adaptive softmax [";
    for (std::size_t i = 0; i < adaptive_cutoffs.size(); ++i)
      os << (i ? ", " : "") << adaptive_cutoffs[i];
    os << "]";
  }
  return os.str();
}

}  // namespace crt::model
