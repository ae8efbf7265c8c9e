// crt-bench: the benchmark suite. FLOPs (closed form and engine tally), streaming-inference and
// training-step latency, and memory of the Transformer, Transformer-XL and CRT (GRU, NCGRU)
// across segment lengths, beside the PyTorch reference when python3-torch is installed.
// Writes a terminal table, CSV, JSON and SVG plots. `crt-bench --help` lists the options.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bench/suite/configs.hpp"
#include "bench/suite/paper.hpp"
#include "bench/suite/records.hpp"
#include "bench/suite/reference.hpp"
#include "bench/suite/machine.hpp"
#include "bench/suite/runner.hpp"
#include "bench/suite/svg_plot.hpp"
#include "crt/cli/options.hpp"
#include "engine/error.hpp"
#include "engine/json.hpp"
#include "kernels/kernels.hpp"

#ifndef CRT_BENCH_SCRIPT
#define CRT_BENCH_SCRIPT "bench/pytorch_reference.py"
#endif

namespace fs = std::filesystem;
using namespace crt;
using namespace crt::bench;

namespace {

// Upper bounds of the integer flags: far above any useful value, low enough that the products
// the runner forms (segments x batch x repetitions x tokens) stay inside 64 bits.
constexpr std::int64_t kMaxSegment = 1 << 16;
constexpr std::int64_t kMaxBatch = 1 << 16;
constexpr std::int64_t kMaxBptt = 1 << 10;
constexpr std::int64_t kMaxReps = 1 << 20;
constexpr std::int64_t kMaxThreads = 1 << 10;

struct Options {
  bool full = false, flops_only = false, pytorch = true, tally = true;
  bool tally_all = false;  // tally the large-vocabulary configuration too (a model per second of init)
  std::optional<double> max_run_seconds;
  bool extra16 = true;  // quick default: also paper-16 at segment 70, inference (Table 6 check)
  std::vector<std::string> configs{"small"}, models, modes{"infer", "train"}, flop_configs;
  std::vector<std::int64_t> seg{17, 35, 70}, flop_seg{17, 35, 70, 150};
  std::vector<int> threads{1, 2};
  std::optional<std::int64_t> reps_infer, reps_train;
  RunOptions run;
  std::string out = "out/bench", python = "/usr/bin/python3", script = CRT_BENCH_SCRIPT;
};

Options parse_args(int argc, char** argv) {
  crt::cli::Options a(
      "crt-bench",
      "FLOPs, latency and memory of Transformer, Transformer-XL and CRT.\n"
      "The default is a quick run, a few minutes on 2 cores: configuration 'small' timed at segments 17, 35, 70,\n"
      "1 and 2 threads, inference and training, plus paper-16 inference at segment 70; FLOPs of every\n"
      "configuration at 17, 35, 70, 150 (closed form; forward tallied except wt103-16).",
      {{"full", "", "the whole grid: every configuration timed at 17, 35, 70, 150", ""},
       {"configs", "LIST", "timed configurations: small, paper-3, paper-16, wt103-16", "small"},
       {"models", "LIST", "transformer, xl, crt-gru, crt-ncgru (default: all)", ""},
       {"seg", "LIST", "timed segment lengths", "17,35,70"},
       {"threads", "LIST", "thread counts", "1,2"},
       {"modes", "LIST", "infer (batch 1, memory/cache carried), train (one AdamW step)", "infer,train"},
       {"batch", "N", "training batch", "16"},
       {"bptt", "K", "segments per training step", "1"},
       {"reps-infer", "N", "timed segments per inference run (default 15; --full 20)", ""},
       {"reps-train", "N", "timed steps per training run (default 4; --full 5)", ""},
       {"flop-configs", "LIST", "configurations of the FLOP table (default: all)", ""},
       {"flop-seg", "LIST", "segment lengths of the FLOP table", "17,35,70,150"},
       {"no-tally", "", "FLOP table: closed form only where nothing is timed", ""},
       {"tally-all", "", "also tally wt103-16 where untimed (each 267k-vocabulary model takes seconds to build)", ""},
       {"max-run-seconds", "S", "stop a run's timing after 3 repetitions once they took S seconds (default 5; --full 30)", ""},
       {"flops-only", "", "print the FLOP table and stop (no timing)", ""},
       {"no-pytorch", "", "skip the PyTorch reference", ""},
       {"python", "PATH", "Python with torch", "/usr/bin/python3"},
       {"pytorch-script", "P", "the reference script", CRT_BENCH_SCRIPT},
       {"out", "DIR", "output folder", "out/bench"}});
  a.parse(argc, argv);
  if (a.help()) {
    std::cout << a.usage();
    std::exit(0);
  }
  Options o;
  for (const BenchModel& m : all_models()) o.models.push_back(m.name);
  for (const BenchConfig& c : all_configs()) o.flop_configs.push_back(c.name);
  o.full = a.has("full");
  o.flops_only = a.has("flops-only");
  o.pytorch = !a.has("no-pytorch");
  o.tally = !a.has("no-tally");
  o.tally_all = a.has("tally-all");
  if (a.has("max-run-seconds")) o.max_run_seconds = a.real("max-run-seconds", 1e-3, 1e6);
  const bool configs_set = a.has("configs"), seg_set = a.has("seg");
  o.configs = a.strings("configs");
  if (a.has("models")) o.models = a.strings("models");
  o.modes = a.strings("modes");
  if (a.has("modes")) o.extra16 = false;
  o.seg = a.integers("seg", 1, kMaxSegment);
  if (a.has("flop-configs")) o.flop_configs = a.strings("flop-configs");
  o.flop_seg = a.integers("flop-seg", 1, kMaxSegment);
  o.threads.clear();
  for (std::int64_t t : a.integers("threads", 1, kMaxThreads)) o.threads.push_back(int(t));
  o.run.train_batch = a.integer("batch", 1, kMaxBatch);
  o.run.bptt = a.integer("bptt", 1, kMaxBptt);
  if (a.has("reps-infer")) o.reps_infer = a.integer("reps-infer", 1, kMaxReps);
  if (a.has("reps-train")) o.reps_train = a.integer("reps-train", 1, kMaxReps);
  o.out = a.str("out");
  o.python = a.str("python");
  o.script = a.str("pytorch-script");
  if (configs_set || seg_set || o.full) o.extra16 = false;
  if (o.full) {
    if (!configs_set) {
      o.configs.clear();
      for (const BenchConfig& c : all_configs()) o.configs.push_back(c.name);
    }
    if (!seg_set) o.seg = {17, 35, 70, 150};
  }
  o.run.infer_reps = o.reps_infer.value_or(o.full ? 20 : 15);
  o.run.max_run_seconds = o.max_run_seconds.value_or(o.full ? 30 : 5);
  if (o.full) o.tally_all = true;
  o.run.train_reps = o.reps_train.value_or(o.full ? 5 : 4);
  for (const std::string& c : o.configs) (void)find_config(c);
  for (const std::string& c : o.flop_configs) (void)find_config(c);
  for (const std::string& m : o.models) (void)find_model(m);
  for (const std::string& m : o.modes)
    require(m == "infer" || m == "train", "crt-bench", "unknown mode '", m, "' (infer, train)");
  return o;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string fixed(double v, int digits = 1) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// ---- the timed grid ---------------------------------------------------------------------------

struct Point {
  std::string config, model;
  std::int64_t seg;
  bool infer, train;
};

std::vector<Point> timed_points(const Options& o) {
  std::vector<Point> points;
  if (o.flops_only) return points;
  const bool infer = contains(o.modes, "infer"), train = contains(o.modes, "train");
  for (const std::string& c : o.configs)
    for (const std::string& m : o.models)
      for (std::int64_t s : o.seg) points.push_back({c, m, s, infer, train});
  if (o.extra16)
    for (const std::string& m : o.models) points.push_back({"paper-16", m, 70, true, false});
  return points;
}

// Configurations in grid order, and each one's segment lengths.
std::vector<std::pair<std::string, std::vector<std::int64_t>>> grid_axes(const std::vector<Point>& points) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> axes;
  for (const Point& p : points) {
    auto it = std::find_if(axes.begin(), axes.end(), [&](const auto& a) { return a.first == p.config; });
    if (it == axes.end()) {
      axes.push_back({p.config, {}});
      it = axes.end() - 1;
    }
    if (std::find(it->second.begin(), it->second.end(), p.seg) == it->second.end()) it->second.push_back(p.seg);
  }
  return axes;
}

// ---- FLOP table ---------------------------------------------------------------------------

using FlopKey = std::tuple<std::string, std::string, std::int64_t>;  // config, model, seg

std::string tally_mark(std::int64_t closed, std::int64_t counted) {
  if (counted < 0) return "-";
  return counted == closed ? "= tally" : "MISMATCH " + human(double(counted));
}

void print_flop_table(const std::vector<FlopRow>& rows, const Options& o) {
  std::cout << "\n== FLOPs: closed form and engine tally (multiply-add = 2 FLOPs; forward at batch 1 "
               "incl. the softmax loss; training step at batch "
            << o.run.train_batch << ", " << o.run.bptt << " segment(s)) ==\n";
  std::map<FlopKey, const FlopRow*> by;
  for (const FlopRow& r : rows) by[{r.config, r.model, r.seg_len}] = &r;
  for (const std::string& cname : o.flop_configs) {
    const BenchConfig& bc = find_config(cname);
    std::cout << "\n" << bc.name << " (" << bc.description << ")\n";
    std::printf("  %4s  %-12s %10s %-9s %9s  %10s %-9s %9s  %9s %9s  %8s %8s  %8s %8s\n", "seg", "model",
                "fwd/seg", "", "fwd/tok", "train/step", "", "train/tok", "paper", "p/(trn/B)", "fwd/TR",
                "paper/TR", "trn/TR", "XLfirst");
    for (std::int64_t seg : o.flop_seg)
      for (const std::string& mname : o.models) {
        auto it = by.find({cname, mname, seg});
        if (it == by.end()) continue;
        const FlopRow& r = *it->second;
        auto tr = by.find({cname, "transformer", seg});
        const FlopRow* t = tr == by.end() ? nullptr : tr->second;
        const double paper_tr = paper_flops(cname, "transformer", seg);
        const double per_sequence = double(r.train_closed) / double(r.train_batch * r.bptt_segments);
        std::printf("  %4lld  %-12s %10s %-9s %9s  %10s %-9s %9s  %9s %9s  %8s %8s  %8s %8s\n",
                    (long long)seg, mname.c_str(), human(double(r.fwd_closed)).c_str(),
                    tally_mark(r.fwd_closed, r.fwd_counted).c_str(),
                    human(double(r.fwd_closed) / double(seg)).c_str(),
                    human(double(r.train_closed)).c_str(),
                    tally_mark(r.train_closed, r.train_counted).c_str(),
                    human(double(r.train_closed) / double(seg * r.train_batch * r.bptt_segments)).c_str(),
                    r.paper > 0 ? human(r.paper).c_str() : "-",
                    r.paper > 0 ? fixed(r.paper / per_sequence, 3).c_str() : "-",
                    t ? fixed(double(r.fwd_closed) / double(t->fwd_closed), 3).c_str() : "-",
                    r.paper > 0 && paper_tr > 0 ? fixed(r.paper / paper_tr, 3).c_str() : "-",
                    t ? fixed(double(r.train_closed) / double(t->train_closed), 3).c_str() : "-",
                    mname == "xl" ? tally_mark(r.fwd_first_closed, r.fwd_first_counted).c_str() : "");
      }
  }
  std::int64_t counted = 0, equal = 0;
  for (const FlopRow& r : rows)
    for (auto [closed, tally] : {std::pair{r.fwd_first_closed, r.fwd_first_counted},
                                 std::pair{r.fwd_closed, r.fwd_counted},
                                 std::pair{r.train_closed, r.train_counted}})
      if (tally >= 0) {
        ++counted;
        equal += closed == tally ? 1 : 0;
      }
  std::cout << "\n  engine tally == closed form: " << equal << " of " << counted
            << " tallied counts (forward on the first and a steady segment, training steps where "
               "timed); the rest closed form only.\n"
            << "  NCGRU: its forward equals the GRU's (the U_c product included); its A-update "
               "after each optimiser step runs outside the tally (crt::model::ncgru_update_flops, "
               "in flops.json).\n"
            << "  paper: read off Figures 5/6 (WordPTB), method not stated; compare ratios. p/(trn/B): the "
               "paper's value over our training step per sequence (train/step / batch): near 1 means the\n"
               "  paper's figures count forward + backward per segment. fwd/TR, paper/TR, trn/TR: ratios to "
               "the Transformer at the same segment length. XLfirst: XL forward on the stream's first "
               "segment (empty cache).\n";
}

// ---- latency tables and targets ---------------------------------------------------------------

using RecKey = std::tuple<std::string, std::string, std::int64_t, std::int64_t, std::string, std::string>;
// config, model, seg, threads, mode, impl
RecKey key_of(const Record& r) { return {r.config, r.model, r.seg_len, r.threads, r.mode, r.impl}; }

void print_latency_table(const std::vector<Record>& records, const std::vector<Point>& points,
                         const Options& o) {
  std::map<RecKey, const Record*> by;
  for (const Record& r : records) by[key_of(r)] = &r;
  for (const std::string& mode : o.modes) {
    std::cout << "\n== " << (mode == "infer" ? "Streaming inference: one segment at batch 1, memory/cache carried (forward + loss)"
                                             : "Training step: forward, backward, clip, AdamW at batch " +
                                                   std::to_string(o.run.train_batch))
              << " ==\n";
    std::printf("  %-9s %4s %3s %-12s %9s %19s %10s %7s %9s %8s  %9s %9s %9s\n", "config", "seg", "thr", "model",
                "median ms", "[p25 .. p75]", "tokens/s", "GFLOP/s", "torch ms", "speedup", "peak RSS",
                "engine pk", "state");
    for (const auto& [cname, segs] : grid_axes(points))
      for (std::int64_t seg : segs)
        for (int t : o.threads)
          for (const std::string& mname : o.models) {
            auto it = by.find({cname, mname, seg, t, mode, "crt"});
            if (it == by.end()) continue;
            const Record& r = *it->second;
            auto pt = by.find({cname, mname, seg, t, mode, "pytorch"});
            const Record* p = pt == by.end() ? nullptr : pt->second;
            std::string spread = "[";
            spread += fixed(r.latency.p25, 2);
            spread += " .. ";
            spread += fixed(r.latency.p75, 2);
            spread += "]";
            std::printf("  %-9s %4lld %3d %-12s %9s %19s %10s %7s %9s %8s  %9s %9s %9s\n", cname.c_str(),
                        (long long)seg, t, mname.c_str(), fixed(r.latency.median, 2).c_str(), spread.c_str(),
                        fixed(r.tokens_per_s, 0).c_str(), fixed(r.gflops_per_s, 1).c_str(),
                        p ? fixed(p->latency.median, 2).c_str() : "-",
                        p ? (fixed(p->latency.median / r.latency.median, 2) + "x").c_str() : "-",
                        human_bytes(double(r.peak_rss_bytes)).c_str(),
                        human_bytes(double(r.engine_peak_bytes)).c_str(),
                        human_bytes(double(r.state_bytes)).c_str());
          }
  }
  std::cout << "\n  speedup = PyTorch median / crt median (same shapes, same tokens, same run). "
               "state = what one stream carries between segments.\n";
  const auto shown = std::find_if(records.begin(), records.end(), [](const Record& r) { return r.impl == "crt"; });
  if (shown != records.end()) {
    std::cout << "  parameters:";
    std::set<std::pair<std::string, std::string>> seen;
    for (const Record& r : records)
      if (r.impl == "crt" && seen.insert({r.config, r.model}).second)
        std::cout << "  " << r.config << "/" << r.model << " " << human(double(r.param_count)) << " ("
                  << human_bytes(double(r.param_bytes)) << ")";
    std::cout << "\n";
  }
}

struct Target {
  std::string what;
  bool met;
  std::string figure;
};

// The targets, evaluated on whatever this run measured.
std::vector<Target> evaluate_targets(const std::vector<Record>& records, const std::vector<FlopRow>& rows) {
  std::map<RecKey, const Record*> by;
  for (const Record& r : records) by[key_of(r)] = &r;
  auto get = [&](const std::string& c, const std::string& m, std::int64_t s, int t, const std::string& mode,
                 const std::string& impl) -> const Record* {
    auto it = by.find({c, m, s, t, mode, impl});
    return it == by.end() ? nullptr : it->second;
  };
  std::vector<Target> out;
  // Speed against PyTorch, small configuration, CRT and Transformer alike.
  for (const std::string m : {"transformer", "crt-gru", "crt-ncgru"}) {
    for (int t : {1, 2})
      for (std::int64_t s : {17, 35, 70}) {
        const Record* a = get("small", m, s, t, "infer", "crt");
        const Record* p = get("small", m, s, t, "infer", "pytorch");
        if (!a || !p) continue;
        const double need = t == 2 ? 3.0 : (s == 17 ? 3.0 : 2.0);
        const double got = p->latency.median / a->latency.median;
        out.push_back({"small " + m + " infer seg " + std::to_string(s) + ", " + std::to_string(t) +
                           " thr: >= " + fixed(need, 0) + "x PyTorch",
                       got >= need, fixed(got, 2) + "x"});
      }
    for (int t : {1, 2}) {
      const Record* a = get("small", m, 70, t, "train", "crt");
      const Record* p = get("small", m, 70, t, "train", "pytorch");
      if (!a || !p) continue;
      const double need = t == 1 ? 1.2 : 2.0;
      const double got = p->latency.median / a->latency.median;
      out.push_back({"small " + m + " train seg 70, " + std::to_string(t) + " thr: >= " + fixed(need, 1) +
                         "x PyTorch",
                     got >= need, fixed(got, 2) + "x"});
    }
    const Record* one = get("small", m, 70, 1, "train", "crt");
    const Record* two = get("small", m, 70, 2, "train", "crt");
    if (one && two) {
      const double got = one->latency.median / two->latency.median;
      out.push_back({"small " + m + " train seg 70: our 2 threads >= 1.7x our 1 thread", got >= 1.7,
                     fixed(got, 2) + "x"});
    }
  }
  // CRT within 15% (3 layers) / 5% (16 layers) of the Transformer; XL above both.
  std::set<std::tuple<std::string, std::int64_t, int, std::string>> points;
  for (const Record& r : records)
    if (r.impl == "crt") points.insert({r.config, r.seg_len, int(r.threads), r.mode});
  for (const auto& [c, s, t, mode] : points) {
    const Record* tr = get(c, "transformer", s, t, mode, "crt");
    const Record* xl = get(c, "xl", s, t, mode, "crt");
    const std::string where = c + " " + mode + " seg " + std::to_string(s) + ", " + std::to_string(t) + " thr";
    const double tol = find_config(c).layers >= 16 ? 0.05 : 0.15;
    for (const std::string m : {"crt-gru", "crt-ncgru"}) {
      const Record* cr = get(c, m, s, t, mode, "crt");
      if (!tr || !cr) continue;
      const double ratio = cr->latency.median / tr->latency.median;
      // The FLOP ratio beside it: where it is above 1 + tol already, the target asks the
      // RNNs' work to run faster per FLOP than the Transformer's GEMMs.
      const double flop_ratio = tr->flops_closed_form > 0
                                    ? double(cr->flops_closed_form) / double(tr->flops_closed_form)
                                    : 0.0;
      out.push_back({where + ": " + m + " within " + fixed(tol * 100, 0) + "% of transformer",
                     ratio <= 1 + tol,
                     fixed(ratio, 3) + "x (FLOPs " + fixed(flop_ratio, 3) + "x)"});
    }
    const Record* cr = get(c, "crt-gru", s, t, mode, "crt");
    if (xl && tr && cr) {
      const double ratio = xl->latency.median / std::max(tr->latency.median, cr->latency.median);
      out.push_back({where + ": xl slower than transformer and crt-gru", ratio > 1, fixed(ratio, 3) + "x"});
    }
  }
  std::int64_t counted = 0, equal = 0;
  for (const FlopRow& r : rows)
    for (auto [closed, tally] : {std::pair{r.fwd_first_closed, r.fwd_first_counted},
                                 std::pair{r.fwd_closed, r.fwd_counted}, std::pair{r.train_closed, r.train_counted}})
      if (tally >= 0) {
        ++counted;
        equal += closed == tally;
      }
  for (const Record& r : records)
    if (r.impl == "crt" && r.flops_counted >= 0) {
      ++counted;
      equal += r.flops_counted == r.flops_closed_form;
    }
  if (counted > 0)
    out.push_back({"engine FLOP tally == closed form", equal == counted,
                   std::to_string(equal) + " of " + std::to_string(counted)});
  return out;
}

// ---- plots ------------------------------------------------------------------------------------

std::vector<std::string> write_plots(const std::vector<Record>& records, const std::vector<FlopRow>& rows,
                                     const std::vector<Point>& points, const Options& o,
                                     const fs::path& dir) {
  std::vector<std::string> files;
  auto save = [&](const std::string& name, const LineChart& chart) {
    const fs::path p = dir / name;
    std::ofstream(p) << render_svg(chart);
    files.push_back(name);
  };
  for (const std::string& cname : o.flop_configs) {
    for (const bool train : {false, true}) {
      LineChart ch;
      ch.title = std::string(train ? "FLOPs per training step, " : "Forward FLOPs per segment, ") + cname +
                 (train ? " (batch " + std::to_string(o.run.train_batch) + ")" : " (batch 1)");
      ch.x_label = "segment length (tokens)";
      ch.y_label = "FLOPs (closed form, multiply-add = 2)";
      std::size_t i = 0;
      for (const std::string& mname : o.models) {
        Series s{mname, series_color(i++), false, {}};
        Series paper{"paper: " + mname, s.color, true, {}};
        for (const FlopRow& r : rows)
          if (r.config == cname && r.model == mname) {
            s.points.emplace_back(double(r.seg_len), double(train ? r.train_closed : r.fwd_closed));
            if (!train && r.paper > 0 && mname != "crt-ncgru") paper.points.emplace_back(double(r.seg_len), r.paper);
          }
        ch.series.push_back(s);
        if (!paper.points.empty()) ch.series.push_back(paper);
      }
      save(std::string(train ? "flops_train_" : "flops_forward_") + cname + ".svg", ch);
    }
  }
  for (const auto& [cname, segs] : grid_axes(points))
    for (const std::string mode : {"infer", "train"})
      for (int t : o.threads) {
        LineChart ch;
        ch.title = (mode == "infer" ? "Streaming inference latency per segment (batch 1), "
                                    : "Training-step latency (batch " + std::to_string(o.run.train_batch) + "), ") +
                   cname + ", " + std::to_string(t) + " thread" + (t > 1 ? "s" : "");
        ch.x_label = "segment length (tokens)";
        ch.y_label = "median latency (ms)";
        std::size_t i = 0;
        bool any = false;
        for (const std::string& mname : o.models) {
          Series s{"crt " + mname, series_color(i++), false, {}};
          Series p{"pytorch " + mname, s.color, true, {}};
          for (const Record& r : records)
            if (r.config == cname && r.model == mname && r.mode == mode && r.threads == t)
              (r.impl == "crt" ? s : p).points.emplace_back(double(r.seg_len), r.latency.median);
          any = any || !s.points.empty();
          ch.series.push_back(s);
          if (!p.points.empty()) ch.series.push_back(p);
        }
        if (any) save("latency_" + mode + "_" + cname + "_" + std::to_string(t) + "t.svg", ch);
      }
  std::ofstream html(dir / "index.html");
  html << "<!doctype html><html><head><meta charset=\"utf-8\"><title>crt-bench</title></head><body>\n"
       << "<h1>crt-bench plots</h1><p>Data: results.json, results.csv, flops.json, flops.csv.</p>\n";
  for (const std::string& f : files) html << "<p><img src=\"" << f << "\" alt=\"" << f << "\"></p>\n";
  html << "</body></html>\n";
  return files;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
  require(bool(f), "crt-bench", "cannot write '", p.string(), "'");
}

// The JSON document with one array element per line (compact elements).
std::string json_document(const std::vector<std::pair<std::string, json::Value>>& fields) {
  std::string out = "{\n";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto& [key, value] = fields[i];
    out += "\"" + key + "\": ";
    if (value.is_array()) {
      out += "[";
      const auto& items = value.as_array();
      for (std::size_t j = 0; j < items.size(); ++j) out += (j ? ",\n  " : "\n  ") + json::write(items[j]);
      out += items.empty() ? "]" : "\n]";
    } else {
      out += json::write(value);
    }
    out += i + 1 < fields.size() ? ",\n" : "\n";
  }
  return out + "}\n";
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double one = -1;
  f >> one;
  return one;
}

int run(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  const fs::path out_dir = o.out;
  fs::create_directories(out_dir);
  const unsigned hw = std::thread::hardware_concurrency();
  const double load_before = load_average();
  std::cout << "crt-bench " << (o.full ? "(full grid)" : "(quick; --full for the whole grid)") << "\n"
            << "  CPU: " << crt::bench::cpu_name() << ", " << hw << " hardware threads, kernels: " << kernels::active_isa()
            << ", load average " << fixed(load_before, 2) << "\n";
  if (load_before > 0.5)
    std::cout << "  note: other processes are using the CPU (load " << fixed(load_before, 2)
              << "); timings will be slower and noisier than on an idle machine.\n";

  const std::vector<Point> points = timed_points(o);
  std::set<FlopKey> timed;
  for (const Point& p : points) timed.insert({p.config, p.model, p.seg});

  // FLOP table: closed forms for every (configuration, model, segment) of the table and of the
  // timed grid; forward tallies where the point is not timed (timed points fill theirs).
  Options shown = o;
  for (const Point& p : points) {
    if (!contains(shown.flop_configs, p.config)) shown.flop_configs.push_back(p.config);
    if (std::find(shown.flop_seg.begin(), shown.flop_seg.end(), p.seg) == shown.flop_seg.end())
      shown.flop_seg.push_back(p.seg);
  }
  std::sort(shown.flop_seg.begin(), shown.flop_seg.end());
  std::vector<FlopRow> rows;
  std::map<FlopKey, std::size_t> row_index;
  std::cout << "\nFLOP table: closed forms" << (o.tally ? " and forward tallies" : "") << " ..." << std::flush;
  const auto thread_runs = std::int64_t(o.threads.size());
  for (const std::string& c : shown.flop_configs)
    for (const std::string& m : o.models)
      for (std::int64_t s : shown.flop_seg) {
        FlopRow r = flop_row(find_config(c), find_model(m), s, o.run, thread_runs);
        r.paper = paper_flops(c, m, s);
        row_index[{c, m, s}] = rows.size();
        rows.push_back(r);
      }
  if (o.tally)
    for (const std::string& c : shown.flop_configs)
      for (const std::string& m : o.models) {
        if (find_config(c).vocab > 50000 && !o.tally_all) continue;
        std::vector<FlopRow*> untimed;
        for (std::int64_t s : shown.flop_seg)
          if (!timed.count({c, m, s})) untimed.push_back(&rows[row_index.at({c, m, s})]);
        tally_forward(find_config(c), find_model(m), o.run, untimed);
        std::cout << "." << std::flush;
      }
  std::cout << " done\n";

  std::vector<Record> records;
  if (!points.empty()) {
    // The PyTorch reference runs each point right after crt, so that both see the same machine.
    std::unique_ptr<Reference> reference;
    if (o.pytorch) {
      if (!torch_available(o.python)) {
        std::cout << "\nPyTorch reference skipped: " << o.python
                  << " cannot import torch (apt-get install -y python3-torch).\n";
      } else if (!fs::exists(o.script)) {
        std::cout << "\nPyTorch reference skipped: no script at " << o.script << " (--pytorch-script).\n";
      } else {
        std::vector<ReferencePoint> ref_points;
        for (const Point& p : points)
          ref_points.push_back({&find_config(p.config), &find_model(p.model), p.seg, p.infer, p.train});
        std::cout << "\nStarting the PyTorch reference (" << o.script << ")\n";
        reference = std::make_unique<Reference>(o.python, o.script, o.threads, o.run, ref_points,
                                                (out_dir / "pytorch").string());
      }
    }
    std::cout << "\nTiming (" << o.run.infer_reps << " segments per inference run, " << o.run.train_reps
              << " steps per training run, after warm-up; a run stops early after 3 once it has taken "
              << fixed(o.run.max_run_seconds, 0) << " s) ...\n";
    for (const Point& p : points) {
      FlopRow& row = rows[row_index.at({p.config, p.model, p.seg})];
      std::vector<Record> got = run_point(find_config(p.config), find_model(p.model), p.seg, o.threads,
                                          p.infer, p.train, o.run, row);
      if (reference) {
        for (Record& r : reference->run({&find_config(p.config), &find_model(p.model), p.seg, p.infer, p.train})) {
          r.flops_closed_form = r.mode == "infer" ? row.fwd_closed : row.train_closed;
          if (r.latency.median > 0) r.gflops_per_s = double(r.flops_closed_form) / (r.latency.median / 1e3) / 1e9;
          got.push_back(r);
        }
      }
      for (const Record& r : got) {
        std::printf("  %-7s %-9s %-12s seg %4lld  %d thr  %-5s  %9.2f ms  (%s FLOPs%s)\n", r.impl.c_str(),
                    p.config.c_str(), p.model.c_str(), (long long)p.seg, int(r.threads), r.mode.c_str(),
                    r.latency.median, human(double(r.flops_closed_form)).c_str(),
                    r.impl != "crt" ? "" : r.flops_counted == r.flops_closed_form ? ", = tally" : ", TALLY DIFFERS");
        std::fflush(stdout);
        records.push_back(r);
      }
    }
  }
  const double load_after = load_average();

  print_flop_table(rows, shown);
  if (!records.empty()) print_latency_table(records, points, o);

  const std::vector<Target> targets = evaluate_targets(records, rows);
  if (!targets.empty()) {
    std::cout << "\n== Targets (issue 5), on this run's measurements ==\n";
    for (const Target& t : targets)
      std::printf("  [%s] %-72s %s\n", t.met ? " met " : "MISS ", t.what.c_str(), t.figure.c_str());
  }
  if (std::any_of(records.begin(), records.end(), [](const Record& r) { return r.layers >= 16; }))
    std::cout << "\n  paper Table 6 (WikiText-103, 16 layers, inference): crt/transformer "
              << fixed(kPaperTable6Crt / kPaperTable6Transformer, 3) << ", xl/transformer "
              << fixed(kPaperTable6Xl / kPaperTable6Transformer, 3) << "\n";
  std::cout << "  load average: " << fixed(load_before, 2) << " before, " << fixed(load_after, 2) << " after\n";

  // Files.
  json::Value recs = json::Value::array();
  for (const Record& r : records) recs.push_back(to_json(r));
  json::Value flops = json::Value::array();
  for (const FlopRow& r : rows) flops.push_back(to_json(r));
  json::Value tj = json::Value::array();
  for (const Target& t : targets) {
    json::Value e = json::Value::object();
    e.add("target", json::Value::string(t.what));
    e.add("met", json::Value::boolean(t.met));
    e.add("measured", json::Value::string(t.figure));
    tj.push_back(e);
  }
  json::Value meta = json::Value::object();
  meta.add("cpu", json::Value::string(crt::bench::cpu_name()));
  meta.add("hardware_threads", json::Value::integer(hw));
  meta.add("kernels_isa", json::Value::string(kernels::active_isa()));
  meta.add("full", json::Value::boolean(o.full));
  meta.add("load_average_before", json::Value::number(std::max(0.0, load_before)));
  meta.add("load_average_after", json::Value::number(std::max(0.0, load_after)));
  meta.add("flop_convention",
           json::Value::string("multiply-add = 2 FLOPs; matmul, attention over visible keys, GRU products; "
                               "forward = one segment incl. the softmax loss; train = forward + backward of "
                               "one training step; NCGRU A-update not tallied (flops_uncounted)"));
  write_text(out_dir / "results.json",
             json_document({{"suite", json::Value::string("crt-bench")}, {"meta", meta}, {"records", recs},
                            {"flops", flops}, {"targets", tj}}));
  std::string csv = csv_header_records() + "\n";
  for (const Record& r : records) csv += to_csv(r) + "\n";
  write_text(out_dir / "results.csv", csv);
  write_text(out_dir / "flops.json", json_document({{"flops", flops}}));
  std::string fcsv = csv_header_flops() + "\n";
  for (const FlopRow& r : rows) fcsv += to_csv(r) + "\n";
  write_text(out_dir / "flops.csv", fcsv);
  const std::vector<std::string> plots = write_plots(records, rows, points, shown, out_dir);
  const fs::path abs = fs::absolute(out_dir);
  std::cout << "\nWrote " << (abs / "results.json").string() << " (records, FLOP table, targets), results.csv, "
            << "flops.json, flops.csv\n  and " << plots.size() << " SVG plots, all shown by "
            << (abs / "index.html").string() << " (open in a browser)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const crt::cli::UsageError& e) {
    std::cerr << "crt-bench: " << e.what() << " (see crt-bench --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "crt-bench: " << e.what() << "\n";
    return 1;
  }
}
