#include "train/run_dir.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/tensor_io.h"

namespace golf::train {
namespace fs = std::filesystem;

RunDir::RunDir(fs::path dir) : dir_(std::move(dir)) {
  log_ = std::fopen((dir_ / "train.log").c_str(), "a");
  metrics_ = std::fopen((dir_ / "metrics.jsonl").c_str(), "a");
  if (!log_ || !metrics_) fail("{}: cannot write train.log / metrics.jsonl: {}", dir_.string(), std::strerror(errno));
}

RunDir::RunDir(RunDir&& o) noexcept : dir_(std::move(o.dir_)), log_(o.log_), metrics_(o.metrics_) {
  o.log_ = o.metrics_ = nullptr;
}

RunDir::~RunDir() {
  if (log_) std::fclose(log_);
  if (metrics_) std::fclose(metrics_);
}

RunDir RunDir::create(Config& cfg) {
  if (cfg.run_id.empty()) {
    const std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", std::localtime(&now));
    cfg.run_id = stamp;
  }
  const fs::path dir = fs::path(cfg.output_dir) / cfg.run_id;
  std::error_code ec;
  if (fs::exists(dir, ec))
    fail("run directory {} already exists: resume it with --resume {} or choose another RUN_ID", dir.string(),
         dir.string());
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create run directory {}: {}", dir.string(), ec.message());
  write_file_atomic(dir / "config.json", to_json(cfg).dump(2) + "\n");
  return RunDir(dir);
}

RunDir RunDir::open(const fs::path& dir, Config& cfg) {
  cfg = read_config(dir);
  return RunDir(dir);
}

Config RunDir::read_config(const fs::path& dir) {
  std::ifstream in(dir / "config.json");
  if (!in) fail("--resume {}: no config.json (not a golf-train run directory)", dir.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed config.json: {}", (dir / "config.json").string(), e.what());
  }
  return config_from_json(j);
}

void RunDir::log(const std::string& line) {
  // On a terminal the live progress line (stderr) is cleared first, then redrawn by its next update.
  static const bool tty = ::isatty(STDERR_FILENO) && ::isatty(STDOUT_FILENO);
  if (tty) std::fputs("\r\033[K", stderr);
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
  std::fprintf(log_, "%s\n", line.c_str());
  std::fflush(log_);
}

void RunDir::metrics(const nlohmann::json& event) {
  std::fprintf(metrics_, "%s\n", event.dump().c_str());
  std::fflush(metrics_);
}

void RunDir::save_weights(const std::string& file, const std::map<std::string, at::Tensor>& tensors,
                          const Config& cfg) const {
  save_tensors(dir_ / file, tensors, {{"config", to_json(cfg).dump()}, {"format", "golf-weights-1"}});
}

// The checkpoint directory is replaced as a whole: written beside it, then swapped in by rename,
// so a crash at any point leaves either the old or the new checkpoint, never a mix.
void RunDir::save_checkpoint(const Checkpoint& c) const {
  const fs::path final_dir = dir_ / "checkpoint";
  const fs::path tmp = dir_ / fmt::format(".checkpoint.tmp-{}", ::getpid());
  const fs::path old = dir_ / fmt::format(".checkpoint.old-{}", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_tensors(tmp / "model.safetensors", c.model);
  save_tensors(tmp / "optimizer.safetensors", c.optimizer);
  save_tensors(tmp / "ema.safetensors", c.ema);
  write_file_atomic(tmp / "state.json", c.state.dump(2) + "\n");
  std::error_code ec;
  if (fs::exists(final_dir)) fs::rename(final_dir, old, ec);
  if (ec) fail("cannot replace checkpoint {}: {}", final_dir.string(), ec.message());
  fs::rename(tmp, final_dir, ec);
  if (ec) fail("cannot move checkpoint into {}: {}", final_dir.string(), ec.message());
  fs::remove_all(old, ec);
}

std::optional<Checkpoint> RunDir::read_checkpoint(const fs::path& dir) {
  const fs::path d = dir / "checkpoint";
  if (!fs::exists(d / "state.json")) return std::nullopt;
  Checkpoint c;
  c.model = load_tensors(d / "model.safetensors");
  c.optimizer = load_tensors(d / "optimizer.safetensors");
  c.ema = load_tensors(d / "ema.safetensors");
  std::ifstream in(d / "state.json");
  c.state = nlohmann::json::parse(in);
  return c;
}

}  // namespace golf::train
