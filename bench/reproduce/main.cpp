// crt-reproduce: runs a reproduction protocol (bench/protocols/*.json) and reports it.
//   crt-reproduce --protocol FILE [--out DIR] [--runs A,B] [--threads N] [--data-dir DIR]
//   crt-reproduce --protocol FILE --report [--out DIR]
//   crt-reproduce --protocol FILE --measure-latency [--out DIR] [--threads N]
// Each run trains from its own checkpoint (<out>/<protocol>/<run>/checkpoint.safetensors,
// written every recipe.save_every steps and on SIGINT/SIGTERM), so a run stopped at any point
// continues bit for bit when the command is started again; finished runs (those with a record
// in <out>/<protocol>/runs.jsonl) are skipped. The report step turns the records into
// report.md and two SVG plots (perplexity against forward FLOPs per segment and against
// batch-1 latency per segment, the paper's Figures 5 and 6). --measure-latency times every run's
// model side by side in one process (latency does not depend on the weights' values) and writes
// latency.json, which the report then uses instead of the figures each record took after
// training, on whatever machine and beside whatever load that was.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/reproduce/protocol.hpp"
#include "bench/suite/machine.hpp"
#include "bench/suite/svg_plot.hpp"
#include "crt/cli/options.hpp"
#include "crt/api.hpp"
#include "crt/checkpoint.hpp"
#include "crt/flops.hpp"
#include "datasets/corpus.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/json.hpp"

namespace fs = std::filesystem;
using crt::json::Value;

namespace {

constexpr const char* kTool = "crt-reproduce";
// Exit status when a run was stopped (signal or --stop-after-steps) with its checkpoint saved.
constexpr int kExitStopped = 3;

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) std::_Exit(128 + sig);  // a second signal: leave now
}

struct Options {
  std::string protocol, out = "results", data_dir;
  std::vector<std::string> runs;  // empty: every run of the protocol
  int threads = 0;
  bool report = false;
  bool measure_latency = false;
  std::int64_t stop_after_steps = 0;  // > 0: stop each invocation after this many steps (tests)
};

[[noreturn]] void usage_error(const std::string& problem) {
  std::cerr << kTool << ": " << problem << " (see " << kTool << " --help)\n";
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  crt::cli::Options a(kTool,
                      "Trains every run of a protocol that has no record yet (resuming from its checkpoint), then "
                      "writes the report;\n--report only writes the report; --measure-latency times every run's "
                      "model side by side (latency.json), then writes the report.",
                      {{"protocol", "FILE", "the protocol (bench/protocols/*.json; required)", ""},
                       {"out", "DIR", "results folder", "results"},
                       {"runs", "LIST", "only these runs (comma-separated names)", ""},
                       {"threads", "N", "worker threads (0: all cores)", "0"},
                       {"data-dir", "DIR", "data folder", ""},
                       {"report", "", "only write the report", ""},
                       {"measure-latency", "", "time every run's model side by side, then write the report", ""},
                       {"stop-after-steps", "N", "stop each invocation after N steps, saved (tests)", "0"}});
  Options o;
  try {
    a.parse(argc, argv);
    if (a.help()) {
      std::cout << a.usage();
      std::exit(0);
    }
    o.protocol = a.str("protocol");
    o.out = a.str("out");
    if (a.has("runs")) o.runs = a.strings("runs");
    o.threads = int(a.integer("threads", 0, 1024));
    o.data_dir = a.str("data-dir");
    o.report = a.has("report");
    o.measure_latency = a.has("measure-latency");
    o.stop_after_steps = a.integer("stop-after-steps", 0, std::int64_t(1) << 40);
  } catch (const crt::cli::UsageError& e) {
    usage_error(e.what());
  }
  if (o.protocol.empty()) usage_error("--protocol is required");
  if (o.out.empty()) usage_error("--out must not be empty");
  if (o.report && o.measure_latency) usage_error("--report and --measure-latency exclude each other");
  return o;
}

// The commit of the source tree this binary runs from, "+dirty" when tracked files differ.
std::string source_commit() {
  const std::string dir = CRT_SOURCE_DIR;
  auto run = [](const std::string& cmd) {
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[256];
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  };
  std::string head = run("git -C '" + dir + "' rev-parse --short=12 HEAD 2>/dev/null");
  if (head.empty()) return "unknown";
  if (!run("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null").empty()) head += "+dirty";
  return head;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Records already written, by run name (a line that does not parse is an error naming it).
std::map<std::string, Value> read_records(const fs::path& file) {
  std::map<std::string, Value> out;
  std::ifstream in(file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    Value v;
    try {
      v = crt::json::parse(line);
    } catch (const crt::Error& e) {
      throw crt::Error(file.string() + " line " + std::to_string(n) + ": " + e.what());
    }
    const Value* run = v.find("run");
    if (!run || !run->is_string())
      throw crt::Error(file.string() + " line " + std::to_string(n) + ": a record without a 'run' name");
    out[run->as_string()] = v;
  }
  return out;
}

void append_record(const fs::path& file, const Value& record) {
  std::ofstream out(file, std::ios::app);
  out << crt::json::write(record) << "\n";
  out.flush();
  if (!out) throw crt::Error("cannot append the record to " + file.string());
}

Value str(const std::string& s) { return Value::string(s); }
Value num(double d) { return Value::number(d); }
Value count(std::int64_t v) { return Value::integer(std::uint64_t(v)); }

// Median batch-1 latency of one segment (forward and loss, memory or cache carried), in ms.
double segment_latency_ms(const crt::model::LanguageModel& m, const std::vector<std::int32_t>& tokens,
                          std::int64_t segments) {
  crt::NoGradGuard no_grad;
  crt::model::StreamState state = m.initial_state(1);
  const std::int64_t seg = m.config().seg_len;
  std::vector<double> ms;
  const std::int64_t warm = 2;
  for (std::int64_t i = 0; i < segments + warm; ++i) {
    const std::size_t begin = std::size_t(i * seg) % (tokens.size() - std::size_t(seg) - 1);
    const std::vector<std::int32_t> ids(tokens.begin() + long(begin), tokens.begin() + long(begin) + seg);
    const std::vector<std::int32_t> targets(tokens.begin() + long(begin) + 1, tokens.begin() + long(begin) + seg + 1);
    const auto t0 = std::chrono::steady_clock::now();
    (void)m.loss(m.forward(ids, 1, state, {}), targets).item();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warm) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Rounds of the side-by-side latency measurement: each run's figure is the median of its
// per-round medians, so a burst of other load in one round moves no run's figure much.
constexpr int kLatencyRounds = 3;

// Times every run's model (freshly initialised: latency does not depend on the weights'
// values) in turns, and returns latency.json's content.
Value measure_latencies(const crt::repro::Protocol& p, const crt::data::Corpus& corpus, const std::string& commit) {
  std::vector<std::unique_ptr<crt::model::LanguageModel>> models;
  for (const auto& spec : p.runs)
    models.push_back(std::make_unique<crt::model::LanguageModel>(
        p.config(spec, std::int64_t(corpus.vocab.size())), spec.seed));
  std::vector<std::vector<double>> rounds(p.runs.size());
  for (int round = 0; round < kLatencyRounds; ++round)
    for (std::size_t i = 0; i < p.runs.size(); ++i)
      rounds[i].push_back(segment_latency_ms(*models[i], corpus.test, p.runs[i].recipe.latency_segments));
  Value runs = Value::object();
  for (std::size_t i = 0; i < p.runs.size(); ++i) {
    std::sort(rounds[i].begin(), rounds[i].end());
    runs.add(p.runs[i].name, Value::number(rounds[i][rounds[i].size() / 2]));
    std::cerr << "[" << p.runs[i].name << "] " << rounds[i][rounds[i].size() / 2] << " ms per segment\n";
  }
  Value out = Value::object();
  out.add("cpu", Value::string(crt::bench::cpu_name()));
  out.add("isa", Value::string(crt::active_isa()));
  out.add("threads", Value::integer(std::uint64_t(crt::thread_count())));
  out.add("commit", Value::string(commit));
  out.add("rounds", Value::integer(kLatencyRounds));
  out.add("ms_per_segment", runs);
  return out;
}

std::int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  return it == meta.end() ? 0 : std::stoll(it->second);
}
double meta_real(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  return it == meta.end() ? 0.0 : std::stod(it->second);
}
std::string format_real(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

// Trains one run to the end (or until stopped) and returns its record; nullopt when stopped.
std::optional<Value> train_run(const crt::repro::Protocol& p, const crt::repro::RunSpec& spec,
                               const crt::data::Corpus& corpus, const fs::path& run_dir,
                               const Options& opt, const std::string& commit) {
  namespace cm = crt::model;
  const cm::ModelConfig c = p.config(spec, std::int64_t(corpus.vocab.size()));
  const crt::repro::Recipe& r = spec.recipe;
  cm::TrainOptions o;
  o.batch = r.batch;
  o.bptt_segments = r.bptt;
  const std::int64_t columns = std::int64_t(corpus.train.size()) / r.batch;
  const auto segments_per_epoch = std::int64_t(std::ceil(double(columns - 1) / double(c.seg_len)));
  o.steps = r.max_steps > 0 ? r.max_steps
                            : std::max<std::int64_t>(1, std::int64_t(r.epochs * double(segments_per_epoch) / double(r.bptt)));
  o.lr = r.lr;
  o.warmup = std::min(r.warmup, o.steps);
  o.min_lr = r.min_lr;
  o.weight_decay = r.weight_decay;
  o.clip = r.clip;

  fs::create_directories(run_dir);
  const fs::path ckpt = run_dir / "checkpoint.safetensors";
  cm::LanguageModel m(c, spec.seed);
  cm::Trainer trainer(m, corpus.train, o);
  std::int64_t train_tokens = 0;
  double train_seconds = 0;
  std::vector<std::string> commits;
  if (fs::exists(ckpt)) {
    trainer.load(ckpt.string());
    const auto meta = cm::read_checkpoint(ckpt.string()).metadata;
    train_tokens = meta_int(meta, "repro.train_tokens");
    train_seconds = meta_real(meta, "repro.train_seconds");
    auto it = meta.find("repro.commits");
    if (it != meta.end()) commits = split(it->second, ',');
    std::cerr << "[" << spec.name << "] resumed at step " << trainer.steps_done() << " of " << o.steps << "\n";
  }
  if (std::find(commits.begin(), commits.end(), commit) == commits.end()) commits.push_back(commit);
  auto save = [&] {
    std::string joined;
    for (const std::string& s : commits) joined += (joined.empty() ? "" : ",") + s;
    trainer.set_metadata({{"data.corpus", p.corpus},
                          {"repro.protocol", p.name},
                          {"repro.run", spec.name},
                          {"repro.train_tokens", std::to_string(train_tokens)},
                          {"repro.train_seconds", format_real(train_seconds)},
                          {"repro.commits", joined}});
    trainer.save(ckpt.string());
  };
  std::cerr << "[" << spec.name << "] " << c.summary() << ", " << m.parameter_count() << " parameters, "
            << o.steps << " steps of " << r.batch << " x " << c.seg_len << " x " << o.bptt_segments
            << " tokens, " << crt::thread_count() << " threads, " << crt::active_isa() << "\n";
  std::int64_t here = 0;
  double window_loss = 0;
  std::int64_t window = 0;
  const std::int64_t log_every = std::max<std::int64_t>(1, o.steps / 50);
  while (trainer.steps_done() < o.steps) {
    const cm::StepStats s = trainer.step();
    train_tokens += s.tokens;
    train_seconds += s.seconds;
    window_loss += s.loss;
    ++window;
    ++here;
    if (s.step % log_every == 0 || s.step == o.steps) {
      std::fprintf(stderr, "[%s] step %lld/%lld loss %.4f ppl %.2f lr %.3g grad %.3f %.0f tok/s\n",
                   spec.name.c_str(), (long long)s.step, (long long)o.steps, window_loss / double(window),
                   std::exp(window_loss / double(window)), s.lr, s.grad_norm, double(train_tokens) / train_seconds);
      window_loss = 0;
      window = 0;
    }
    const bool stop = g_stop_signal.load() != 0 || (opt.stop_after_steps > 0 && here >= opt.stop_after_steps);
    if (stop && trainer.steps_done() < o.steps) {
      save();
      std::cerr << "[" << spec.name << "] stopped at step " << trainer.steps_done()
                << "; the checkpoint is saved and the next start continues from it\n";
      return std::nullopt;
    }
    if (s.step % r.save_every == 0) {
      try {
        save();
      } catch (const std::exception& e) {  // a failed periodic save must not end the run
        std::cerr << "[" << spec.name << "] warning: checkpoint not saved at step " << s.step << ": "
                  << e.what() << " (training goes on; the next save tries again)\n";
      }
    }
  }
  save();
  const auto t_eval = std::chrono::steady_clock::now();
  const cm::EvalResult valid = cm::evaluate(m, corpus.valid, r.eval_batch);
  const cm::EvalResult test = cm::evaluate(m, corpus.test, r.eval_batch);
  const double latency = segment_latency_ms(m, corpus.test, r.latency_segments);
  const double eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_eval).count();
  cm::SegmentWork seg;
  seg.batch = 1;
  seg.tokens = c.seg_len;
  seg.cached = c.memory == cm::MemoryKind::cache ? c.mem_len : 0;
  const std::int64_t flops = cm::forward_flops(c, seg).total();

  Value rec = Value::object();
  rec.add("run", str(spec.name));
  rec.add("protocol", str(p.name));
  rec.add("table", str(spec.table));
  rec.add("model", str(cm::to_string(c.kind)));
  rec.add("cell", c.memory == cm::MemoryKind::rnn || c.position == cm::PositionEncoding::rnn
                      ? str(cm::to_string(c.rnn_cell)) : Value());
  rec.add("seg_len", count(c.seg_len));
  rec.add("memory", Value::boolean(c.memory != cm::MemoryKind::none));
  rec.add("memory_kind", str(cm::to_string(c.memory)));
  rec.add("position", str(cm::to_string(c.position)));
  rec.add("seed", count(std::int64_t(spec.seed)));
  rec.add("valid_ppl", num(valid.perplexity));
  rec.add("test_ppl", num(test.perplexity));
  rec.add("valid_nll", num(valid.nll));
  rec.add("test_nll", num(test.nll));
  rec.add("steps", count(o.steps));
  rec.add("train_tokens", count(train_tokens));
  rec.add("epochs", num(double(train_tokens) / double(corpus.train.size())));
  rec.add("tokens_per_s", num(double(train_tokens) / train_seconds));
  rec.add("wall_s", num(train_seconds + eval_seconds));
  rec.add("params", count(m.parameter_count()));
  rec.add("flops_forward_per_segment", count(flops));
  rec.add("flops_forward_per_token", num(double(flops) / double(c.seg_len)));
  rec.add("latency_ms_per_segment", num(latency));
  rec.add("threads", count(crt::thread_count()));
  rec.add("isa", str(crt::active_isa()));
  rec.add("recipe", r.to_json());
  Value cs = Value::array();
  for (const std::string& s : commits) cs.push_back(str(s));
  rec.add("commits", cs);
  std::cerr << "[" << spec.name << "] valid ppl " << valid.perplexity << ", test ppl " << test.perplexity << "\n";
  return rec;
}

// ---- report ------------------------------------------------------------------------------

double field(const Value& rec, const char* key) {
  const Value* v = rec.find(key);
  return v && v->is_number() ? v->as_number() : std::nan("");
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// A run's recipe overrides as "lr 0.001, dropout 0.2"; "" for the protocol's own recipe.
std::string overrides_text(const crt::repro::RunSpec& r) {
  const Value recipe = r.recipe.to_json();
  std::string out;
  for (const std::string& key : r.recipe_overrides) {
    const Value* v = recipe.find(key);
    out += (out.empty() ? "" : ", ") + key + " " + (v ? crt::json::write(*v) : std::string("?"));
  }
  return out;
}

// latency.json's content, or null when there is none (the report then uses the records').
Value read_latency(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Value();
  std::ostringstream text;
  text << in.rdbuf();
  try {
    Value v = crt::json::parse(text.str());
    if (!v.find("ms_per_segment") || !v.find("ms_per_segment")->is_object()) throw crt::Error("no 'ms_per_segment' object");
    return v;
  } catch (const crt::Error& e) {
    throw crt::Error(file.string() + ": " + e.what() + " (remove it or measure again with --measure-latency)");
  }
}

void write_report(const crt::repro::Protocol& p, const std::map<std::string, Value>& records,
                  const fs::path& dir) {
  const Value latency = read_latency(dir / "latency.json");
  // A run's batch-1 latency: latency.json's when it has the run, else the record's.
  auto latency_of = [&](const std::string& run, const Value& rec) {
    if (!latency.is_null())
      if (const Value* v = latency.find("ms_per_segment")->find(run); v && v->is_number()) return v->as_number();
    return field(rec, "latency_ms_per_segment");
  };
  const bool overridden = std::any_of(p.runs.begin(), p.runs.end(),
                                      [](const auto& r) { return !r.recipe_overrides.empty(); });
  std::ostringstream md;
  md << "# Reproduction: protocol `" << p.name << "`\n\n"
     << "Written by `crt-reproduce --protocol " << p.source << " --report` from `runs.jsonl` (one record per "
     << "finished run); every figure below comes from a record. Paper values: Mucllari et al. 2025 "
     << "(arXiv:2505.00929), Tables 2, 8 and 9, as transcribed in paper.md.\n\n"
     << "Model: " << p.layers << " layers, d_model " << p.d_model << ", " << p.heads << " heads, d_inner "
     << p.d_inner << (p.tied ? ", tied embeddings" : "") << "; corpus " << p.corpus << ".\n\n"
     << "Recipe (" << (overridden ? "every run, with the changes its row names" : "the same for every run")
     << "): `" << crt::json::write(p.recipe.to_json()) << "`\n\n"
     << "Runs finished: " << records.size() << " of " << p.runs.size() << ".\n";
  std::vector<std::string> tables;
  for (const auto& r : p.runs)
    if (std::find(tables.begin(), tables.end(), r.table) == tables.end()) tables.push_back(r.table);
  for (const std::string& t : tables) {
    md << "\n## " << (t.empty() ? std::string("Other runs") : "Table " + t) << "\n\n"
       << "| run | model | seg | " << (overridden ? "recipe changes | " : "")
       << "valid ppl | test ppl | paper ppl | params | fwd FLOPs/segment | latency ms/segment | tokens/s | commits |\n"
       << "|---|---|---|" << (overridden ? "---|" : "") << "---|---|---|---|---|---|---|---|\n";
    const crt::repro::RunSpec* best = nullptr;
    double best_valid = 0;
    for (const auto& r : p.runs) {
      if (r.table != t) continue;
      auto it = records.find(r.name);
      md << "| " << r.name << " | " << r.label << " | " << r.seg_len << " | ";
      if (overridden) md << (r.recipe_overrides.empty() ? "none" : overrides_text(r)) << " | ";
      if (it != records.end() && (!best || field(it->second, "valid_ppl") < best_valid)) {
        best = &r;
        best_valid = field(it->second, "valid_ppl");
      }
      if (it == records.end()) {
        md << "not run yet | | " << (r.paper_ppl ? fixed(*r.paper_ppl, 1) : "-") << " | | | | | |\n";
        continue;
      }
      const Value& rec = it->second;
      std::string commits;
      if (const Value* cs = rec.find("commits"); cs && cs->is_array())
        for (const Value& c : cs->as_array()) commits += (commits.empty() ? "" : ", ") + c.as_string();
      md << fixed(field(rec, "valid_ppl"), 2) << " | " << fixed(field(rec, "test_ppl"), 2) << " | "
         << (r.paper_ppl ? fixed(*r.paper_ppl, 1) : "-") << " | " << fixed(field(rec, "params"), 0) << " | "
         << fixed(field(rec, "flops_forward_per_segment") / 1e6, 1) << "M | "
         << fixed(latency_of(r.name, rec), 2) << " | " << fixed(field(rec, "tokens_per_s"), 0)
         << " | " << commits << " |\n";
    }
    // A recipe-selection table: the choice is made on validation perplexity only.
    if (overridden && best)
      md << "\nLowest validation perplexity: `" << best->name << "` ("
         << (best->recipe_overrides.empty() ? std::string("the protocol's recipe") : overrides_text(*best))
         << ", valid " << fixed(best_valid, 2) << ").\n";
  }
  if (!p.orderings.empty()) {
    md << "\n## The paper's orderings, on our test perplexities\n\n| claim | ours | holds |\n|---|---|---|\n";
    for (const auto& o : p.orderings) {
      std::string ours;
      bool complete = true, holds = true;
      double previous = -1;
      for (const std::string& run : o.runs) {
        auto it = records.find(run);
        if (it == records.end()) {
          complete = false;
          ours += (ours.empty() ? "" : " < ") + run + " (not run)";
          continue;
        }
        const double v = field(it->second, "test_ppl");
        ours += (ours.empty() ? "" : " < ") + run + " " + fixed(v, 2);
        if (previous >= 0 && !(previous < v)) holds = false;
        previous = v;
      }
      md << "| " << o.claim << " | " << ours << " | " << (complete ? (holds ? "yes" : "**no**") : "not yet") << " |\n";
    }
  }
  // Figures 5 and 6: one line per series, points ordered by cost.
  std::map<std::string, std::vector<std::pair<double, double>>> by_flops, by_latency;
  for (const auto& r : p.runs) {
    auto it = records.find(r.name);
    if (r.series.empty() || it == records.end()) continue;
    const double ppl = field(it->second, "test_ppl");
    by_flops[r.series].push_back({field(it->second, "flops_forward_per_segment") / 1e6, ppl});
    by_latency[r.series].push_back({latency_of(r.name, it->second), ppl});
  }
  auto chart = [&](const std::string& title, const std::string& x, auto& points) {
    crt::bench::LineChart ch;
    ch.title = title;
    ch.x_label = x;
    ch.y_label = "test perplexity";
    std::size_t i = 0;
    for (auto& [name, pts] : points) {
      std::sort(pts.begin(), pts.end());
      ch.series.push_back({name, crt::bench::series_color(i++), false, pts});
    }
    return crt::bench::render_svg(ch);
  };
  std::ofstream(dir / "ppl_vs_flops.svg")
      << chart(p.name + ": perplexity against forward FLOPs per segment (batch 1)", "MFLOPs per segment", by_flops);
  std::ofstream(dir / "ppl_vs_latency.svg")
      << chart(p.name + ": perplexity against batch-1 latency per segment", "ms per segment", by_latency);
  md << "\n## Perplexity against cost\n\n![perplexity against FLOPs](ppl_vs_flops.svg)\n\n"
     << "![perplexity against latency](ppl_vs_latency.svg)\n\n"
     << "FLOPs: the closed form of `crt/flops.hpp` (a multiply-add is 2 FLOPs), forward of one segment at "
     << "batch 1 including the output layer, with the memory token or the full cache. Latency: median of "
     << "batch-1 segments of the test split (forward and loss), memory or cache carried, ";
  if (!latency.is_null())
    md << "every run's model timed side by side in one process by `--measure-latency` (the median of "
       << latency.find("rounds")->as_number() << " rounds taken in turns) on " << latency.find("cpu")->as_string()
       << ", " << latency.find("isa")->as_string() << ", " << latency.find("threads")->as_number()
       << " thread(s), commit " << latency.find("commit")->as_string() << ".\n";
  else
    md << "as each record measured it after training, on that run's machine and threads and beside "
       << "whatever else ran then (`--measure-latency` times all runs side by side).\n";
  std::ofstream out(dir / "report.md");
  out << md.str();
  if (!out) throw crt::Error("cannot write " + (dir / "report.md").string());
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);
  try {
    const crt::repro::Protocol p = crt::repro::load_protocol(opt.protocol);
    const fs::path dir = fs::path(opt.out) / p.name;
    fs::create_directories(dir);
    const fs::path records_file = dir / "runs.jsonl";
    std::map<std::string, Value> records = read_records(records_file);
    int status = 0;
    if (opt.measure_latency) {
      crt::set_thread_count(opt.threads);
      const crt::data::Corpus corpus = crt::data::load_corpus(p.corpus, crt::data::resolve_data_dir(opt.data_dir));
      const Value latency = measure_latencies(p, corpus, source_commit());
      const fs::path file = dir / "latency.json";
      std::ofstream out(file);
      out << crt::json::write(latency) << "\n";
      out.close();
      if (!out) throw crt::Error("cannot write " + file.string());
    } else if (!opt.report) {
      const std::vector<std::string>& chosen = opt.runs;
      for (const std::string& name : chosen)
        if (!p.find(name)) usage_error("--runs names '" + name + "', which is not in " + opt.protocol);
      crt::set_thread_count(opt.threads);
      std::signal(SIGINT, on_stop_signal);
      std::signal(SIGTERM, on_stop_signal);
      const crt::data::Corpus corpus = crt::data::load_corpus(p.corpus, crt::data::resolve_data_dir(opt.data_dir));
      // Read once: the binary was built from the tree as it was when this process started.
      const std::string commit = source_commit();
      for (const auto& spec : p.runs) {
        if (!chosen.empty() && std::find(chosen.begin(), chosen.end(), spec.name) == chosen.end()) continue;
        if (auto it = records.find(spec.name); it != records.end()) {
          // A record is only valid for the recipe it was trained with.
          const Value* trained = it->second.find("recipe");
          const std::string want = crt::json::write(spec.recipe.to_json());
          if (!trained || crt::json::write(*trained) != want)
            throw crt::Error("the record of run '" + spec.name + "' in " + records_file.string() +
                             " was trained with the recipe " + (trained ? crt::json::write(*trained) : "(none)") +
                             " but the protocol now gives " + want +
                             "; move that record out of the file to train the run again");
          std::cerr << "[" << spec.name << "] finished already (record in " << records_file.string() << ")\n";
          continue;
        }
        const std::optional<Value> rec = train_run(p, spec, corpus, dir / spec.name, opt, commit);
        if (!rec) {
          status = kExitStopped;
          break;
        }
        append_record(records_file, *rec);
        records[spec.name] = *rec;
        write_report(p, records, dir);
        if (g_stop_signal.load() != 0) {
          status = kExitStopped;
          break;
        }
      }
    }
    write_report(p, records, dir);
    std::cerr << "report: " << (dir / "report.md").string() << "\n";
    return status;
  } catch (const std::exception& e) {
    std::cerr << kTool << ": error: " << e.what() << "\n";
    return 1;
  }
}
