// A reproduction protocol: one model shape and one training recipe shared by a list of runs
// (model kind, cell, segment length, ablation switches, seed), read from a JSON file such as
// bench/protocols/ptb-small.json. Every field is checked on load; an error names the file and
// the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "crt/config.hpp"
#include "engine/json.hpp"

namespace crt::repro {

// The training recipe. A protocol has one, applied unchanged to every run; a run may override
// some of its fields (a recipe-selection protocol trains one model under several recipes).
struct Recipe {
  double epochs = 12;            // training length in passes over the training split
  std::int64_t max_steps = 0;    // > 0: stop after this many steps instead (tiny protocols)
  std::int64_t batch = 16;
  std::int64_t bptt = 2;         // segments per step, the same for every model
  double lr = 5e-4;
  std::int64_t warmup = 0;
  double min_lr = 0;
  double weight_decay = 0;
  double clip = 0.25;
  double dropout = 0.1;
  double emb_dropout = 0.1;
  std::int64_t eval_batch = 10;
  std::int64_t save_every = 100;         // steps between checkpoints
  std::int64_t latency_segments = 40;    // batch-1 segments timed after training
  json::Value to_json() const;
};

struct RunSpec {
  std::string name;               // unique within the protocol
  model::ModelKind kind = model::ModelKind::crt;
  model::RnnCell cell = model::RnnCell::gru;  // CRT only
  std::int64_t seg_len = 70;
  bool memory = true;             // CRT: false = no memory token (Table 8's position-RNN-only run)
  std::string position;           // "" = the kind's own; else a PositionEncoding name
  std::uint64_t seed = 1111;
  std::string table;              // the paper's table this run belongs to ("2", "8", "9")
  std::string label;              // row label in the report
  std::string series;             // "" = not plotted; else the line it belongs to
  std::optional<double> paper_ppl;  // the paper's perplexity for this row, if it has one
  Recipe recipe;                    // the protocol's recipe with this run's overrides applied
  std::vector<std::string> recipe_overrides;  // the fields the run overrides, in file order
};

// An expected ordering: the runs' test perplexities, ascending (first is best).
struct Ordering {
  std::string claim;  // what the paper says, in words
  std::vector<std::string> runs;
};

struct Protocol {
  std::string name, corpus, source;  // source: the file it was read from
  std::int64_t layers = 3, d_model = 256, heads = 8, d_inner = 1024;
  bool tied = true;
  Recipe recipe;
  std::vector<RunSpec> runs;
  std::vector<Ordering> orderings;

  // The model configuration of a run (dropout from the run's recipe), for `vocab` words.
  model::ModelConfig config(const RunSpec& run, std::int64_t vocab) const;
  const RunSpec* find(const std::string& run) const;
};

// Reads and checks a protocol file. Throws crt::Error naming the file and the bad field.
Protocol load_protocol(const std::string& path);

}  // namespace crt::repro
