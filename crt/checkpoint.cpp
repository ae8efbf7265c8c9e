// Model checkpoints (see checkpoint.hpp).
#include "crt/checkpoint.hpp"

#include <cmath>
#include <iostream>
#include <set>

#include "engine/autograd.hpp"
#include "engine/error.hpp"

namespace crt::model {

namespace {
constexpr const char* kOp = "checkpoint";

NamedTensors model_tensors(const LanguageModel& model) {
  NamedTensors out;
  for (const auto& [name, t] : model.parameters()) out.emplace_back("param." + name, t);
  for (const auto& [name, t] : model.buffers()) out.emplace_back("buffer." + name, t);
  return out;
}
}  // namespace

void save_checkpoint(const std::string& path, const LanguageModel& model, const NamedTensors& extra,
                     const std::map<std::string, std::string>& extra_metadata) {
  NamedTensors all = model_tensors(model);
  all.insert(all.end(), extra.begin(), extra.end());
  std::map<std::string, std::string> meta = model.config().to_metadata();
  meta["format"] = kCheckpointFormat;
  for (const auto& [k, v] : extra_metadata) meta[k] = v;
  save_safetensors(path, all, meta);
}

SafetensorsFile read_checkpoint(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  auto it = file.metadata.find("format");
  require(it != file.metadata.end() && it->second == kCheckpointFormat, kOp, "'", path,
          "' is a safetensors file but not a crt checkpoint (metadata 'format' is ",
          it == file.metadata.end() ? std::string("missing") : "'" + it->second + "'", ")");
  return file;
}

ModelConfig checkpoint_config(const SafetensorsFile& file) {
  try {
    return ModelConfig::from_metadata(file.metadata);
  } catch (const Error& e) {
    throw Error(format_error(kOp, "'", file.path, "': bad model configuration: ", e.what()));
  }
}

void require_finite(const Tensor& t, const std::string& name, const std::string& path) {
  const Tensor c = t.contiguous();  // scanned in place: no copy of a large embedding
  std::int64_t bad = 0, first = -1;
  auto scan = [&](const auto* p) {
    for (std::int64_t i = 0; i < c.numel(); ++i)
      if (!std::isfinite(p[i])) {
        if (first < 0) first = i;
        ++bad;
      }
  };
  if (c.dtype() == DType::f32) scan(c.data<float>());
  else scan(c.data<double>());
  require(bad == 0, kOp, "'", path, "': tensor '", name, "' has ", bad, " non-finite value",
          bad == 1 ? "" : "s", " (NaN or infinity; the first at element ", first,
          " of ", c.numel(), "): the checkpoint is unusable (train from an earlier one)");
}

void assign_tensor(Tensor& dst, const Tensor& src, const std::string& name, const std::string& path) {
  require(dst.shape() == src.shape(), kOp, "'", path, "': tensor '", name, "' has shape ",
          src.shape(), " but the model expects ", dst.shape());
  // One rule for dtypes: a checkpoint holds every model tensor in the model's own dtype (crt
  // writes them so); a tensor stored in another is refused rather than converted.
  require(dst.dtype() == src.dtype(), kOp, "'", path, "': tensor '", name, "' is stored as ",
          dtype_name(src.dtype()), " but the model's is ", dtype_name(dst.dtype()));
  require_finite(src, name, path);
  NoGradGuard no_grad;
  dst.copy_(src);
}

void load_model_tensors(const SafetensorsFile& file, LanguageModel& model) {
  const ModelConfig stored = checkpoint_config(file);
  require(stored == model.config(), kOp, "'", file.path, "' holds a model of another configuration\n  file:  ",
          stored.summary(), "\n  model: ", model.config().summary());
  NamedTensors live = model_tensors(model);
  std::set<std::string> expected;
  for (const auto& [name, t] : live) {
    require(file.contains(name), kOp, "'", file.path, "' lacks tensor '", name, "'");
    const Tensor& src = file.get(name);
    require(src.shape() == t.shape(), kOp, "'", file.path, "': tensor '", name, "' has shape ",
            src.shape(), " but the model expects ", t.shape());
    expected.insert(name);
  }
  for (const auto& [name, t] : file.tensors) {
    const bool model_part = name.rfind("param.", 0) == 0 || name.rfind("buffer.", 0) == 0;
    require(!model_part || expected.count(name), kOp, "'", file.path, "' has tensor '", name,
            "' that this model does not have");
    const bool known = model_part || name.rfind("optim.", 0) == 0 || name.rfind("state.", 0) == 0;
    if (!known)
      std::cerr << "checkpoint '" << file.path << "': warning: ignoring unknown tensor '" << name << "'\n";
  }
  for (auto& [name, t] : live) assign_tensor(t, file.get(name), name, file.path);
}

}  // namespace crt::model
