// Result records: statistics, JSON and CSV forms (see records.hpp).
#include "bench/suite/records.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "engine/error.hpp"

namespace crt::bench {

namespace {

// Linear interpolation between order statistics (the "R-7" quantile).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * double(sorted.size() - 1);
  const auto lo = std::size_t(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

json::Value int_or_null(std::int64_t v) {
  return v < 0 ? json::Value() : json::Value::integer(std::uint64_t(v));
}
json::Value real(double v) { return std::isfinite(v) ? json::Value::number(v) : json::Value(); }

std::int64_t get_int(const json::Value& v, const char* key, std::int64_t fallback = -1) {
  const json::Value* m = v.find(key);
  if (m == nullptr || m->is_null()) return fallback;
  require(m->is_number(), "crt-bench", "record field '", key, "' is not a number");
  return std::int64_t(std::llround(m->as_number()));
}
double get_real(const json::Value& v, const char* key, double fallback = 0) {
  const json::Value* m = v.find(key);
  if (m == nullptr || m->is_null()) return fallback;
  require(m->is_number(), "crt-bench", "record field '", key, "' is not a number");
  return m->as_number();
}
std::string get_string(const json::Value& v, const char* key) {
  const json::Value* m = v.find(key);
  require(m != nullptr && m->is_string(), "crt-bench", "record lacks the string field '", key, "'");
  return m->as_string();
}

std::string csv_int(std::int64_t v) { return v < 0 ? "" : std::to_string(v); }
std::string csv_real(double v) {
  if (!std::isfinite(v) || v < 0) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

LatencyStats latency_stats(std::vector<double> ms) {
  LatencyStats s;
  s.reps = std::int64_t(ms.size());
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.min = ms.front();
  s.max = ms.back();
  s.median = quantile(ms, 0.5);
  s.p25 = quantile(ms, 0.25);
  s.p75 = quantile(ms, 0.75);
  return s;
}

json::Value to_json(const Record& r) {
  json::Value o = json::Value::object();
  o.add("impl", json::Value::string(r.impl));
  o.add("model", json::Value::string(r.model));
  o.add("config", json::Value::string(r.config));
  o.add("layers", int_or_null(r.layers));
  o.add("d_model", int_or_null(r.d_model));
  o.add("vocab", int_or_null(r.vocab));
  o.add("adaptive_softmax", json::Value::boolean(r.adaptive));
  o.add("seg_len", int_or_null(r.seg_len));
  o.add("batch", int_or_null(r.batch));
  o.add("threads", int_or_null(r.threads));
  o.add("mode", json::Value::string(r.mode));
  o.add("bptt_segments", int_or_null(r.bptt_segments));
  o.add("cached", int_or_null(r.cached));
  o.add("flops_closed_form", int_or_null(r.flops_closed_form));
  o.add("flops_counted", int_or_null(r.flops_counted));
  o.add("flops_uncounted", int_or_null(r.flops_uncounted));
  o.add("reps", int_or_null(r.latency.reps));
  o.add("latency_ms_median", real(r.latency.median));
  o.add("latency_ms_min", real(r.latency.min));
  o.add("latency_ms_max", real(r.latency.max));
  o.add("latency_ms_p25", real(r.latency.p25));
  o.add("latency_ms_p75", real(r.latency.p75));
  o.add("tokens_per_s", real(r.tokens_per_s));
  o.add("gflops_per_s", real(r.gflops_per_s));
  o.add("param_count", int_or_null(r.param_count));
  o.add("param_bytes", int_or_null(r.param_bytes));
  o.add("peak_rss_bytes", int_or_null(r.peak_rss_bytes));
  o.add("engine_peak_bytes", int_or_null(r.engine_peak_bytes));
  o.add("state_bytes", int_or_null(r.state_bytes));
  o.add("note", json::Value::string(r.note));
  return o;
}

json::Value to_json(const FlopRow& r) {
  json::Value o = json::Value::object();
  o.add("model", json::Value::string(r.model));
  o.add("config", json::Value::string(r.config));
  o.add("layers", int_or_null(r.layers));
  o.add("d_model", int_or_null(r.d_model));
  o.add("vocab", int_or_null(r.vocab));
  o.add("seg_len", int_or_null(r.seg_len));
  o.add("forward_first_segment_closed_form", int_or_null(r.fwd_first_closed));
  o.add("forward_first_segment_counted", int_or_null(r.fwd_first_counted));
  o.add("forward_closed_form", int_or_null(r.fwd_closed));
  o.add("forward_counted", int_or_null(r.fwd_counted));
  o.add("forward_per_token", real(double(r.fwd_closed) / double(r.seg_len)));
  o.add("train_batch", int_or_null(r.train_batch));
  o.add("train_step_closed_form", int_or_null(r.train_closed));
  o.add("train_step_counted", int_or_null(r.train_counted));
  o.add("train_bptt_segments", int_or_null(r.bptt_segments));
  o.add("train_per_token", real(double(r.train_closed) / double(r.seg_len * r.train_batch * r.bptt_segments)));
  o.add("train_step_uncounted_ncgru_update", int_or_null(r.train_uncounted));
  o.add("paper_flops", r.paper > 0 ? json::Value::number(r.paper) : json::Value());
  return o;
}

Record record_from_json(const json::Value& v) {
  require(v.is_object(), "crt-bench", "a record must be a JSON object");
  Record r;
  r.impl = get_string(v, "impl");
  r.model = get_string(v, "model");
  r.config = get_string(v, "config");
  r.mode = get_string(v, "mode");
  r.layers = get_int(v, "layers", 0);
  r.d_model = get_int(v, "d_model", 0);
  r.vocab = get_int(v, "vocab", 0);
  if (const json::Value* a = v.find("adaptive_softmax"); a && a->is_bool()) r.adaptive = a->as_bool();
  r.seg_len = get_int(v, "seg_len", 0);
  r.batch = get_int(v, "batch", 0);
  r.threads = get_int(v, "threads", 0);
  r.bptt_segments = get_int(v, "bptt_segments", 1);
  r.cached = get_int(v, "cached", 0);
  r.flops_closed_form = get_int(v, "flops_closed_form");
  r.flops_counted = get_int(v, "flops_counted");
  r.flops_uncounted = get_int(v, "flops_uncounted", 0);
  r.latency.reps = get_int(v, "reps", 0);
  r.latency.median = get_real(v, "latency_ms_median");
  r.latency.min = get_real(v, "latency_ms_min");
  r.latency.max = get_real(v, "latency_ms_max");
  r.latency.p25 = get_real(v, "latency_ms_p25");
  r.latency.p75 = get_real(v, "latency_ms_p75");
  r.tokens_per_s = get_real(v, "tokens_per_s");
  r.gflops_per_s = get_real(v, "gflops_per_s");
  r.param_count = get_int(v, "param_count", 0);
  r.param_bytes = get_int(v, "param_bytes", 0);
  r.peak_rss_bytes = get_int(v, "peak_rss_bytes", 0);
  r.engine_peak_bytes = get_int(v, "engine_peak_bytes");
  r.state_bytes = get_int(v, "state_bytes", 0);
  if (const json::Value* n = v.find("note"); n && n->is_string()) r.note = n->as_string();
  return r;
}

std::string csv_header_records() {
  return "impl,model,config,layers,d_model,vocab,adaptive_softmax,seg_len,batch,threads,mode,"
         "bptt_segments,cached,flops_closed_form,flops_counted,flops_uncounted,reps,"
         "latency_ms_median,latency_ms_min,latency_ms_max,latency_ms_p25,latency_ms_p75,"
         "tokens_per_s,gflops_per_s,param_count,param_bytes,peak_rss_bytes,engine_peak_bytes,"
         "state_bytes,note";
}

std::string to_csv(const Record& r) {
  std::ostringstream os;
  std::string note = r.note;
  std::replace(note.begin(), note.end(), ',', ';');
  os << r.impl << ',' << r.model << ',' << r.config << ',' << r.layers << ',' << r.d_model << ','
     << r.vocab << ',' << (r.adaptive ? 1 : 0) << ',' << r.seg_len << ',' << r.batch << ','
     << r.threads << ',' << r.mode << ',' << r.bptt_segments << ',' << r.cached << ','
     << csv_int(r.flops_closed_form) << ',' << csv_int(r.flops_counted) << ','
     << csv_int(r.flops_uncounted) << ',' << r.latency.reps << ',' << csv_real(r.latency.median)
     << ',' << csv_real(r.latency.min) << ',' << csv_real(r.latency.max) << ','
     << csv_real(r.latency.p25) << ',' << csv_real(r.latency.p75) << ','
     << csv_real(r.tokens_per_s) << ',' << csv_real(r.gflops_per_s) << ',' << r.param_count << ','
     << r.param_bytes << ',' << r.peak_rss_bytes << ',' << csv_int(r.engine_peak_bytes) << ','
     << r.state_bytes << ',' << note;
  return os.str();
}

std::string csv_header_flops() {
  return "model,config,layers,d_model,vocab,seg_len,forward_first_segment_closed_form,"
         "forward_first_segment_counted,forward_closed_form,forward_counted,forward_per_token,"
         "train_batch,train_step_closed_form,train_step_counted,train_bptt_segments,train_per_token,"
         "train_step_uncounted_ncgru_update,paper_flops";
}

std::string to_csv(const FlopRow& r) {
  std::ostringstream os;
  os << r.model << ',' << r.config << ',' << r.layers << ',' << r.d_model << ',' << r.vocab << ','
     << r.seg_len << ',' << r.fwd_first_closed << ',' << csv_int(r.fwd_first_counted) << ','
     << r.fwd_closed << ',' << csv_int(r.fwd_counted) << ','
     << csv_real(double(r.fwd_closed) / double(r.seg_len)) << ',' << r.train_batch << ','
     << r.train_closed << ',' << csv_int(r.train_counted) << ','
     << r.bptt_segments << ','
     << csv_real(double(r.train_closed) / double(r.seg_len * r.train_batch * r.bptt_segments)) << ','
     << r.train_uncounted << ',' << csv_real(r.paper);
  return os.str();
}

std::string human(double v) {
  const char* units[] = {"", "k", "M", "G", "T", "P"};
  int u = 0;
  while (std::abs(v) >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.3g%s", v, units[u]);
  return buf;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

}  // namespace crt::bench
