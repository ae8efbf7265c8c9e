// Protocol files (see protocol.hpp): JSON in, checked structs out.
#include "bench/reproduce/protocol.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "engine/error.hpp"

namespace crt::repro {

namespace {

// Field access with errors that name the file and the field's path.
class Fields {
 public:
  Fields(const json::Value& object, std::string file, std::string where)
      : object_(object), file_(std::move(file)), where_(std::move(where)) {
    if (!object.is_object()) fail(where_.empty() ? "the document" : where_, "must be an object");
    for (const auto& [key, value] : object.as_object()) unread_.insert(key);
  }

  const json::Value* get(const std::string& key) {
    unread_.erase(key);
    return object_.find(key);
  }
  std::string path(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw Error("protocol '" + file_ + "': '" + field + "' " + problem);
  }

  double number(const std::string& key, std::optional<double> fallback, double lo, double hi) {
    const json::Value* v = get(key);
    if (!v) {
      if (!fallback) fail(path(key), "is required");
      return *fallback;
    }
    if (!v->is_number()) fail(path(key), "must be a number");
    const double d = v->as_number();
    if (!(d >= lo && d <= hi)) {
      std::ostringstream os;
      os << "must be in [" << lo << ", " << hi << "], got " << d;
      fail(path(key), os.str());
    }
    return d;
  }
  std::int64_t integer(const std::string& key, std::optional<std::int64_t> fallback, std::int64_t lo,
                       std::int64_t hi) {
    const json::Value* v = get(key);
    if (!v) {
      if (!fallback) fail(path(key), "is required");
      return *fallback;
    }
    const std::optional<std::uint64_t> u = v->as_u64();
    if (!u || *u > std::uint64_t(std::numeric_limits<std::int64_t>::max()) ||
        std::int64_t(*u) < lo || std::int64_t(*u) > hi)
      fail(path(key), "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return std::int64_t(*u);
  }
  std::string string(const std::string& key, std::optional<std::string> fallback) {
    const json::Value* v = get(key);
    if (!v) {
      if (!fallback) fail(path(key), "is required");
      return *fallback;
    }
    if (!v->is_string()) fail(path(key), "must be a string");
    return v->as_string();
  }
  bool boolean(const std::string& key, bool fallback) {
    const json::Value* v = get(key);
    if (!v) return fallback;
    if (!v->is_bool()) fail(path(key), "must be true or false");
    return v->as_bool();
  }
  // Every member must have been read: a misspelt field is an error, not a silent default.
  void done() const {
    if (!unread_.empty()) fail(path(*unread_.begin()), "is not a known field");
  }

 private:
  const json::Value& object_;
  std::string file_, where_;
  std::set<std::string> unread_;
};

constexpr double kMaxRate = 10.0;                 // learning rates above this are typos
constexpr std::int64_t kMaxWidth = 1 << 16;       // model widths and segment lengths
constexpr std::int64_t kMaxCount = 1LL << 40;     // steps, batches, seeds and the like

// Reads a recipe; a field that is absent takes its value from `base` (the protocol's recipe
// for a run's overrides, the built-in defaults for the protocol's own, where lr is required).
Recipe parse_recipe(Fields& f, const Recipe& base, bool lr_required) {
  Recipe r;
  r.epochs = f.number("epochs", base.epochs, 0.0, 1e6);
  r.max_steps = f.integer("max_steps", base.max_steps, 0, kMaxCount);
  if (r.epochs <= 0 && r.max_steps == 0) f.fail(f.path("epochs"), "must be > 0 unless max_steps is set");
  r.batch = f.integer("batch", base.batch, 1, 1 << 20);
  r.bptt = f.integer("bptt", base.bptt, 1, 1024);
  r.lr = f.number("lr", lr_required ? std::nullopt : std::optional<double>(base.lr), 1e-12, kMaxRate);
  r.warmup = f.integer("warmup", base.warmup, 0, kMaxCount);
  r.min_lr = f.number("min_lr", std::min(base.min_lr, r.lr), 0.0, r.lr);
  r.weight_decay = f.number("weight_decay", base.weight_decay, 0.0, 1.0);
  r.clip = f.number("clip", base.clip, 0.0, 1e6);
  r.dropout = f.number("dropout", base.dropout, 0.0, 0.95);
  r.emb_dropout = f.number("emb_dropout", base.emb_dropout, 0.0, 0.95);
  r.eval_batch = f.integer("eval_batch", base.eval_batch, 1, 1 << 20);
  r.save_every = f.integer("save_every", base.save_every, 1, kMaxCount);
  r.latency_segments = f.integer("latency_segments", base.latency_segments, 1, 1 << 20);
  f.done();
  return r;
}

}  // namespace

json::Value Recipe::to_json() const {
  json::Value o = json::Value::object();
  o.add("epochs", json::Value::number(epochs));
  o.add("max_steps", json::Value::integer(std::uint64_t(max_steps)));
  o.add("batch", json::Value::integer(std::uint64_t(batch)));
  o.add("bptt", json::Value::integer(std::uint64_t(bptt)));
  o.add("lr", json::Value::number(lr));
  o.add("warmup", json::Value::integer(std::uint64_t(warmup)));
  o.add("min_lr", json::Value::number(min_lr));
  o.add("weight_decay", json::Value::number(weight_decay));
  o.add("clip", json::Value::number(clip));
  o.add("dropout", json::Value::number(dropout));
  o.add("emb_dropout", json::Value::number(emb_dropout));
  o.add("eval_batch", json::Value::integer(std::uint64_t(eval_batch)));
  o.add("save_every", json::Value::integer(std::uint64_t(save_every)));
  o.add("latency_segments", json::Value::integer(std::uint64_t(latency_segments)));
  return o;
}

model::ModelConfig Protocol::config(const RunSpec& run, std::int64_t vocab) const {
  model::ModelConfig c = model::preset(run.kind, layers, d_model, heads, d_inner, vocab);
  c.seg_len = run.seg_len;
  c.mem_len = run.seg_len;  // Transformer-XL: memory = segment (Table 2's 70/70, 35/35, 17/17)
  c.rnn_cell = run.cell;
  if (!run.position.empty()) c.position = model::parse_position(run.position);
  if (!run.memory) c.memory = model::MemoryKind::none;
  c.tie_embeddings = tied;
  c.dropout = run.recipe.dropout;
  c.emb_dropout = run.recipe.emb_dropout;
  c.validate();
  return c;
}

const RunSpec* Protocol::find(const std::string& run) const {
  for (const RunSpec& r : runs)
    if (r.name == run) return &r;
  return nullptr;
}

Protocol load_protocol(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("protocol '" + path + "': cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  json::Value doc;
  try {
    doc = json::parse(text.str());
  } catch (const Error& e) {
    throw Error("protocol '" + path + "': " + e.what());
  }
  Protocol p;
  p.source = path;
  Fields top(doc, path, "");
  p.name = top.string("name", std::nullopt);
  if (p.name.empty() || p.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos)
    top.fail("name", "must be a non-empty name of a-z, 0-9, '-' and '_' (it names a folder)");
  p.corpus = top.string("corpus", std::nullopt);
  (void)top.string("about", std::string());
  {
    const json::Value* m = top.get("model");
    if (!m) top.fail("model", "is required");
    Fields f(*m, path, "model");
    p.layers = f.integer("layers", std::nullopt, 1, 1024);
    p.d_model = f.integer("d_model", std::nullopt, 1, kMaxWidth);
    p.heads = f.integer("heads", std::nullopt, 1, kMaxWidth);
    p.d_inner = f.integer("d_inner", std::nullopt, 1, kMaxWidth);
    p.tied = f.boolean("tied", true);
    f.done();
  }
  {
    const json::Value* r = top.get("recipe");
    if (!r) top.fail("recipe", "is required");
    Fields f(*r, path, "recipe");
    p.recipe = parse_recipe(f, Recipe{}, /*lr_required=*/true);
  }
  const json::Value* runs = top.get("runs");
  if (!runs || !runs->is_array() || runs->as_array().empty()) top.fail("runs", "must be a non-empty array");
  std::set<std::string> names;
  for (std::size_t i = 0; i < runs->as_array().size(); ++i) {
    Fields f(runs->as_array()[i], path, "runs[" + std::to_string(i) + "]");
    RunSpec r;
    r.name = f.string("run", std::nullopt);
    if (r.name.empty() || r.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos)
      f.fail(f.path("run"), "must be a non-empty name of a-z, 0-9, '-' and '_' (it names a folder)");
    if (!names.insert(r.name).second) f.fail(f.path("run"), "'" + r.name + "' appears twice");
    try {
      r.kind = model::parse_model_kind(f.string("model", std::nullopt));
      r.cell = model::parse_rnn_cell(f.string("cell", std::string("gru")));
      r.position = f.string("position", std::string());
      if (!r.position.empty()) (void)model::parse_position(r.position);
    } catch (const Error& e) {
      f.fail(f.path("model/cell/position"), std::string("is invalid: ") + e.what());
    }
    r.seg_len = f.integer("seg_len", std::nullopt, 1, kMaxWidth);
    r.memory = f.boolean("memory", true);
    r.seed = std::uint64_t(f.integer("seed", 1111, 0, kMaxCount));
    r.table = f.string("table", std::string());
    r.label = f.string("label", r.name);
    r.series = f.string("series", std::string());
    if (f.get("paper_ppl")) r.paper_ppl = f.number("paper_ppl", std::nullopt, 1.0, 1e9);
    r.recipe = p.recipe;
    if (const json::Value* o = f.get("recipe")) {
      Fields rf(*o, path, f.path("recipe"));
      r.recipe = parse_recipe(rf, p.recipe, /*lr_required=*/false);
      for (const auto& [key, value] : o->as_object()) r.recipe_overrides.push_back(key);
    }
    f.done();
    p.runs.push_back(r);
    (void)p.config(r, 100);  // the configuration must be valid for any vocabulary
  }
  if (const json::Value* orderings = top.get("orderings")) {
    if (!orderings->is_array()) top.fail("orderings", "must be an array");
    for (std::size_t i = 0; i < orderings->as_array().size(); ++i) {
      Fields f(orderings->as_array()[i], path, "orderings[" + std::to_string(i) + "]");
      Ordering o;
      o.claim = f.string("claim", std::nullopt);
      const json::Value* list = f.get("runs");
      if (!list || !list->is_array() || list->as_array().size() < 2)
        f.fail(f.path("runs"), "must list at least two runs, best first");
      for (const json::Value& v : list->as_array()) {
        if (!v.is_string() || !p.find(v.as_string()))
          f.fail(f.path("runs"), "names a run that is not in the protocol");
        o.runs.push_back(v.as_string());
      }
      f.done();
      p.orderings.push_back(o);
    }
  }
  top.done();
  return p;
}

}  // namespace crt::repro
