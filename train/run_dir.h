// train/run_dir.h — a training run's directory and everything written into it:
//   config.json          the resolved configuration (ENV-style keys)
//   train.log            the records' log lines (also printed)
//   metrics.jsonl        one JSON object per logged event
//   checkpoint/          model, optimizer, EMA (safetensors) + state.json; replaced atomically
//   final_model.safetensors, ema_model.safetensors, hessians.safetensors   at the end
// Only rank 0 writes. An existing run directory is never overwritten: resume it or pick a new RUN_ID.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/config.h"

namespace golf::train {

struct Checkpoint {
  std::map<std::string, at::Tensor> model, optimizer, ema;
  nlohmann::json state;  // step, train_ms, looping, loader position, …
};

class RunDir {
 public:
  // New run: OUTPUT_DIR/RUN_ID (RUN_ID "" → a time stamp); fails if it already exists.
  static RunDir create(Config& config);
  // Existing run (for --resume): its config.json is the configuration.
  static RunDir open(const std::filesystem::path& dir, Config& config);
  // Read-only access for the ranks that do not write (distributed --resume; needs the run
  // directory on a file system every node sees): the run's configuration and last checkpoint.
  static Config read_config(const std::filesystem::path& dir);
  static std::optional<Checkpoint> read_checkpoint(const std::filesystem::path& dir);
  RunDir(RunDir&&) noexcept;
  ~RunDir();

  const std::filesystem::path& path() const { return dir_; }
  void log(const std::string& line);             // stdout + train.log
  void metrics(const nlohmann::json& event);     // metrics.jsonl
  void save_weights(const std::string& file, const std::map<std::string, at::Tensor>& tensors,
                    const Config& config) const;  // safetensors with the config in the metadata
  void save_checkpoint(const Checkpoint& checkpoint) const;

 private:
  explicit RunDir(std::filesystem::path dir);
  std::filesystem::path dir_;
  std::FILE* log_ = nullptr;
  std::FILE* metrics_ = nullptr;
};

}  // namespace golf::train
