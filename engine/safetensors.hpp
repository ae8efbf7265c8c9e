// Checkpoints in the safetensors format: u64 little-endian header length, JSON header
// (name -> dtype/shape/data_offsets, optional "__metadata__"), then the raw little-endian data.
// Saving is atomic (temp file, fsync, rename, directory fsync); loading validates everything.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"

namespace crt {

// Writes F32/F64 tensors (any layout; stored contiguous, sorted by name, no gaps) and string
// metadata to `path`, replacing it atomically. Throws crt::Error naming the path (and the OS
// error) on failure, leaving any previous file intact and no temporary file behind. Names must
// be non-empty, unique, valid UTF-8 and not "__metadata__".
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The same file's bytes, in memory (for small things such as a stream's state).
std::string safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::string path;                                    // where it was loaded from
  std::vector<std::pair<std::string, Tensor>> tensors;  // in header order (sorted by name
                                                        // for files written by save_safetensors)
  std::map<std::string, std::string> metadata;
  // The tensor called `name`; throws crt::Error naming the missing name and the file.
  const Tensor& get(const std::string& name) const;
  bool contains(const std::string& name) const;
};

// Reads and fully validates a safetensors file (F32 and F64 tensors; other dtypes are refused).
// Every defect throws crt::Error "load_safetensors: '<path>': <problem>".
SafetensorsFile load_safetensors(const std::string& path);

// The same checks on an image held in memory (`name` stands for the path in error messages).
SafetensorsFile parse_safetensors_bytes(std::string_view bytes, const std::string& name);

}  // namespace crt
