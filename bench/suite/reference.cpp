// Running bench/pytorch_reference.py as long-lived worker processes (see reference.hpp).
#include "bench/suite/reference.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "engine/error.hpp"

extern char** environ;

namespace crt::bench {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

json::Value integer(std::int64_t v) { return json::Value::integer(std::uint64_t(v)); }

json::Value point_json(const ReferencePoint& p, const RunOptions& o, std::int64_t thread_runs,
                       const std::string& token_file) {
  const model::ModelConfig c = make_config(*p.config, *p.model, p.seg);
  json::Value e = json::Value::object();
  e.add("config", json::Value::string(p.config->name));
  e.add("model", json::Value::string(p.model->name));
  e.add("kind", json::Value::string(model::to_string(c.kind)));
  e.add("rnn_cell", json::Value::string(model::to_string(c.rnn_cell)));
  e.add("layers", integer(c.n_layer));
  e.add("d_model", integer(c.d_model));
  e.add("n_head", integer(c.n_head));
  e.add("d_head", integer(c.d_head));
  e.add("d_inner", integer(c.d_inner));
  e.add("vocab", integer(c.vocab_size));
  json::Value cut = json::Value::array();
  for (std::int64_t x : c.adaptive_cutoffs) cut.push_back(integer(x));
  e.add("cutoffs", cut);
  e.add("seg_len", integer(p.seg));
  e.add("mem_len", integer(c.mem_len));
  e.add("dropout", json::Value::number(c.dropout));
  e.add("emb_dropout", json::Value::number(c.emb_dropout));
  e.add("ncgru_negative_entries",
        integer(c.ncgru_negative_entries < 0 ? c.d_model / 10 : c.ncgru_negative_entries));
  e.add("ncgru_neumann_order", integer(c.ncgru_neumann_order));
  e.add("ncgru_exact_every", integer(c.ncgru_exact_every));
  json::Value modes = json::Value::array();
  if (p.infer) modes.push_back(json::Value::string("infer"));
  if (p.train) modes.push_back(json::Value::string("train"));
  e.add("modes", modes);
  e.add("token_file", json::Value::string(token_file));
  e.add("infer_tokens", integer(infer_token_count(p.seg, o)));
  e.add("train_tokens", integer(train_token_count(p.seg, o, thread_runs)));
  return e;
}

json::Value job_json(const RunOptions& o) {
  json::Value j = json::Value::object();
  j.add("infer_warmup", integer(o.infer_warmup));
  j.add("infer_reps", integer(o.infer_reps));
  // One warm-up step is enough here (crt's second one is for its FLOP tally of step 1).
  j.add("train_warmup", integer(std::max<std::int64_t>(1, o.train_warmup - 1)));
  j.add("train_reps", integer(o.train_reps));
  j.add("train_batch", integer(o.train_batch));
  j.add("bptt_segments", integer(o.bptt));
  j.add("max_run_seconds", json::Value::number(o.max_run_seconds));
  j.add("lr", json::Value::number(2.5e-4));  // the trainer's defaults, as crt-bench uses them
  j.add("weight_decay", json::Value::number(0.01));
  j.add("clip", json::Value::number(0.25));
  return j;
}

}  // namespace

bool torch_available(const std::string& python) {
  const std::string cmd = quoted(python) + " -c 'import torch' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

Reference::Reference(const std::string& python, const std::string& script,
                     const std::vector<int>& threads, const RunOptions& options,
                     const std::vector<ReferencePoint>& points, const std::string& work_dir)
    : options_(options), thread_runs_(std::int64_t(threads.size())) {
  namespace fs = std::filesystem;
  fs::create_directories(work_dir);
  // One token file per vocabulary, long enough for every point: the streams are prefixes of one
  // Zipf sequence, so a point reads its first n tokens.
  std::map<std::int64_t, std::int64_t> longest;
  for (const ReferencePoint& p : points) {
    const std::int64_t n =
        std::max(infer_token_count(p.seg, options), train_token_count(p.seg, options, thread_runs_));
    longest[p.config->vocab] = std::max(longest[p.config->vocab], n);
  }
  for (const auto& [vocab, n] : longest) {
    const std::string path = (fs::path(work_dir) / ("tokens_" + std::to_string(vocab) + ".i32")).string();
    const std::vector<std::int32_t> tokens = zipf_tokens(n, vocab, options.token_seed);
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(tokens.data()),
            std::streamsize(tokens.size() * sizeof(std::int32_t)));
    require(bool(f), "crt-bench", "cannot write the token file '", path, "'");
    token_files_[vocab] = path;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a worker that died must not take the suite with it
  for (int t : threads) {
    processes_.push_back(Process{});
    processes_.back().threads = t;
    start(processes_.back(), python, script);
  }
  // Wait until every worker has imported torch and says it is ready: a worker still starting
  // up would take CPU time from crt's first timings.
  for (Process& p : processes_) {
    char* buf = nullptr;
    std::size_t cap = 0;
    const ssize_t got = getline(&buf, &cap, p.from);
    const std::string line = got > 0 ? std::string(buf, std::size_t(got)) : std::string();
    std::free(buf);
    if (line.find("\"ready\"") == std::string::npos) {
      std::cout << "  [pytorch] the " << p.threads << "-thread worker did not start ("
                << (got > 0 ? "it said: " + line : std::string("no answer")) << "); no PyTorch figures at "
                << p.threads << " thread(s)" << std::endl;
      p.failed = true;
      stop(p);
    }
  }
}

Reference::~Reference() {
  for (Process& p : processes_) stop(p);
}

void Reference::start(Process& p, const std::string& python, const std::string& script) {
  int in_pipe[2], out_pipe[2];
  require(pipe2(in_pipe, O_CLOEXEC) == 0 && pipe2(out_pipe, O_CLOEXEC) == 0, "crt-bench",
          "cannot create pipes for the PyTorch reference: ", std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  // The environment with the thread variables at this count.
  const std::string n = std::to_string(p.threads);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    if (var.rfind("OMP_NUM_THREADS=", 0) == 0 || var.rfind("OPENBLAS_NUM_THREADS=", 0) == 0 ||
        var.rfind("MKL_NUM_THREADS=", 0) == 0)
      continue;
    env_strings.push_back(var);
  }
  for (const char* name : {"OMP_NUM_THREADS=", "OPENBLAS_NUM_THREADS=", "MKL_NUM_THREADS="})
    env_strings.push_back(name + n);
  std::vector<char*> env;
  for (std::string& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::vector<std::string> arg_strings{python, script, "--serve", "--threads", n};
  std::vector<char*> args;
  for (std::string& s : arg_strings) args.push_back(s.data());
  args.push_back(nullptr);
  const int rc = posix_spawnp(&p.pid, python.c_str(), &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (rc != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    throw Error(format_error("crt-bench", "cannot start ", python, ": ", std::strerror(rc)));
  }
  p.to = fdopen(in_pipe[1], "w");
  p.from = fdopen(out_pipe[0], "r");
  std::cout << "  [pytorch] worker for " << p.threads << " thread(s): OMP_NUM_THREADS=" << n
            << " OPENBLAS_NUM_THREADS=" << n << " MKL_NUM_THREADS=" << n << " " << python << " "
            << script << " --serve --threads " << n << std::endl;
}

void Reference::stop(Process& p) {
  if (p.to) std::fclose(p.to);
  if (p.from) std::fclose(p.from);
  p.to = p.from = nullptr;
  if (p.pid > 0) {
    int status = 0;
    waitpid(p.pid, &status, 0);
    p.pid = -1;
  }
}

std::vector<Record> Reference::run(const ReferencePoint& point) {
  const std::string token_file = token_files_.at(point.config->vocab);
  json::Value request = json::Value::object();
  request.add("job", job_json(options_));
  request.add("point", point_json(point, options_, thread_runs_, token_file));
  const std::string line = json::write(request) + "\n";
  std::vector<Record> records;
  for (Process& p : processes_) {
    if (p.failed) continue;
    std::string answer;
    bool ok = std::fputs(line.c_str(), p.to) >= 0 && std::fflush(p.to) == 0;
    if (ok) {
      char* buf = nullptr;
      std::size_t cap = 0;
      const ssize_t got = getline(&buf, &cap, p.from);
      if (got > 0) answer.assign(buf, std::size_t(got));
      std::free(buf);
      ok = got > 0;
    }
    try {
      require(ok, "crt-bench", "no answer");
      const json::Value doc = json::parse(answer);
      if (const json::Value* err = doc.find("error"); err && err->is_string()) {
        std::cout << "  [pytorch] " << p.threads << " thread(s), " << point.config->name << "/"
                  << point.model->name << " seg " << point.seg << ": " << err->as_string() << std::endl;
        continue;
      }
      const json::Value* recs = doc.find("records");
      require(recs != nullptr && recs->is_array(), "crt-bench", "the answer has no records array");
      for (const json::Value& v : recs->as_array()) records.push_back(record_from_json(v));
    } catch (const Error& e) {
      std::cout << "  [pytorch] the " << p.threads << "-thread worker failed on " << point.config->name
                << "/" << point.model->name << " seg " << point.seg << ": " << e.what()
                << "; no more PyTorch figures at " << p.threads << " thread(s)" << std::endl;
      p.failed = true;
      stop(p);
    }
  }
  return records;
}

}  // namespace crt::bench
