// Model checkpoints: safetensors files holding the parameters ("param.<name>"), the
// non-trained buffers ("buffer.<name>"), any extra tensors a trainer adds, and the model
// configuration in the metadata ("crt.<field>"). Written atomically by save_safetensors.
#pragma once

#include <map>
#include <string>

#include "crt/model.hpp"
#include "engine/safetensors.hpp"

namespace crt::model {

inline constexpr const char* kCheckpointFormat = "crt-checkpoint-v1";

// Writes the model (and `extra` tensors/metadata) to `path` atomically.
void save_checkpoint(const std::string& path, const LanguageModel& model,
                     const NamedTensors& extra = {},
                     const std::map<std::string, std::string>& extra_metadata = {});

// Loads and checks a checkpoint file: format tag and configuration. Throws crt::Error naming
// the file for anything that is not a crt checkpoint.
SafetensorsFile read_checkpoint(const std::string& path);
ModelConfig checkpoint_config(const SafetensorsFile& file);

// Copies the file's parameters and buffers into `model`, which must have the same
// configuration; refuses (before changing anything) a missing, extra or mis-shaped tensor or
// a configuration mismatch, naming it.
void load_model_tensors(const SafetensorsFile& file, LanguageModel& model);

// Throws crt::Error naming the tensor and the file when `t` holds a NaN or an infinity.
void require_finite(const Tensor& t, const std::string& name, const std::string& path);

// Copies a tensor from a checkpoint into a live one (same shape and dtype, finite values),
// outside the graph.
void assign_tensor(Tensor& dst, const Tensor& src, const std::string& name, const std::string& path);

}  // namespace crt::model
