// golf-train --nproc N on CPU (Gloo): distributed training is the same computation as one process
// with the same global batch, the launcher honours torchrun's contract, and it survives faults.
//
// The model is tiny (3 layers × 32 dims, vocab 512 from a tokenizer trained on Tiny Shakespeare by
// golf-data) so that 1, 2 and 4 processes each run 5 steps in a few seconds on two cores. Three
// layers give banks of 6 (Q/O), 6 (K/V) and 3 (MLP) matrices: with 2 and 4 ranks both exercise the
// zero padding of Parallel Muon's shards. Clipping is off (GRAD_CLIP_NORM=0): the records clip
// each rank's local gradient (model-and-training.md §2.4), which is by design not the clip of
// one process. ADAM_EPS=1e-4: the all-reduce sums the micro-batch gradients in another order than
// one process's accumulation (fp32, ~1e-7 of the summands), and Adam's step lr·m/(√v + eps) has a
// gain up to lr/eps on that difference where an element's gradient cancels to near zero. With the
// records' eps = 1e-8 one embedding element already differs by 2.5e-6 after one step (9e-6 after
// 5; every other tensor stays within 4.3e-7); eps = 1e-4 bounds the gain so that 1e-6 tests the
// distributed computation rather than the conditioning of Adam.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/safetensors.h"
#include "tests/test_util.h"

extern char** environ;

namespace golf {
namespace {

using test::quote;
using Clock = std::chrono::steady_clock;

// fp32 tensors of a safetensors file as float vectors.
std::map<std::string, std::vector<float>> weights(const std::filesystem::path& file) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : safetensors::read(file).tensors) {
    EXPECT_EQ(t.dtype, "F32") << name;
    std::vector<float> v(t.data.size() / 4);
    std::memcpy(v.data(), t.data.data(), t.data.size());
    out[name] = std::move(v);
  }
  return out;
}

// Largest |a − b| over every element of every tensor (the same names and sizes are required).
double max_abs_diff(const std::map<std::string, std::vector<float>>& a, const std::map<std::string, std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, va] : a) {
    const auto it = b.find(name);
    if (it == b.end() || it->second.size() != va.size()) {
      ADD_FAILURE() << "tensor " << name << " missing or of another size";
      return INFINITY;
    }
    for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(double(va[i]) - double(it->second[i])));
  }
  return worst;
}

// Lines of `text` that contain `what`.
int count_lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// A child started with posix_spawn: `sh -c "exec …"`, so the pid is the command's own.
pid_t spawn_shell(const std::string& command) {
  pid_t pid = -1;
  const std::string exec_cmd = "exec " + command;
  const char* argv[] = {"/bin/sh", "-c", exec_cmd.c_str(), nullptr};
  posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ);
  return pid;
}

// Waits up to `limit` for pid; returns its wait status, or nullopt (after SIGKILLing it) on timeout.
std::optional<int> wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return std::nullopt;
}

// The workers (children) of a launcher, by scanning /proc for its pid as parent.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    int ppid;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(std::stoi(name));
  }
  return out;
}

std::string env_of(pid_t pid, const std::string& key) {
  const std::string env = test::read_file("/proc/" + std::to_string(pid) + "/environ");
  size_t start = 0;
  while (start < env.size()) {
    const size_t end = env.find('\0', start);
    const std::string kv = env.substr(start, end - start);
    if (kv.starts_with(key + "=")) return kv.substr(key.size() + 1);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

class DistTrain : public test::SharedSetupSuite<DistTrain> {
 public:
  static std::string setup_command(const std::filesystem::path& folder) {
    return test::tiny_shakespeare_corpus_command(folder, GOLF_DATA_BIN);
  }

 protected:
  // TRAIN_BATCH_TOKENS=512: 8 micro-batches of 64 tokens per step whatever the world size
  // (GRAD_ACCUM_STEPS=0 → 8 / world).
  static std::string env(const std::string& run_id, const std::string& extra = "") {
    return "env DATA_PATH=" + quote(*dir / "data") + " TOKENIZER_PATH=" + quote(*dir / "tok.model") +
           " OUTPUT_DIR=" + quote(*dir / "runs") + " RUN_ID=" + run_id +
           " VOCAB_SIZE=512 NUM_LAYERS=3 MODEL_DIM=32 NUM_HEADS=2 NUM_KV_HEADS=1 ROPE_DIMS=8 NUM_LOOPS=0"
           " PARALLEL_START_LAYER=2 TRAIN_SEQ_LEN=64 TRAIN_BATCH_TOKENS=512 GRAD_ACCUM_STEPS=0 GRAD_CLIP_NORM=0"
           " MAX_WALLCLOCK_SECONDS=0 ITERATIONS=5 WARMUP_STEPS=1 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=2048"
           " VAL_BATCH_TOKENS=512 TRAIN_LOG_EVERY=1 CHECKPOINT_EVERY=3 GPTQ_CALIBRATION_BATCHES=4 DEVICE=cpu"
           " DIST_TIMEOUT_SECONDS=60 ADAM_EPS=1e-4 " + extra + " ";
  }
  static test::CommandResult train(const std::string& run_id, const std::string& args = "", const std::string& extra = "") {
    return test::run("timeout -k 5 100 " + env(run_id, extra) + "'" + GOLF_TRAIN_BIN + "' " + args);
  }
  static std::vector<double> losses(const std::string& run_id) {
    std::vector<double> out;
    std::ifstream in(*dir / "runs" / run_id / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j["event"] == "train") out.push_back(j["train_loss"].get<double>());
    }
    return out;
  }
  // Trains with 1 process once per suite: the reference every distributed run is compared to.
  static const std::string& single() {
    static const std::string id = [] {
      const auto r = train("single");
      EXPECT_EQ(r.exit_code, 0) << r.output;
      return std::string("single");
    }();
    return id;
  }
  // The same 5 steps on `nproc` processes equal the single process's weights and losses.
  static void expect_equal_to_single(const std::string& run_id, int nproc) {
    const auto r = train(run_id, "--nproc " + std::to_string(nproc));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("world_size:" + std::to_string(nproc) + " grad_accum_steps:" + std::to_string(8 / nproc)),
              std::string::npos)
        << r.output;
    const auto base = weights(*dir / "runs" / single() / "final_model.safetensors");
    const double diff = max_abs_diff(base, weights(*dir / "runs" / run_id / "final_model.safetensors"));
    std::printf("1 vs %d processes: max |weight difference| after 5 steps = %.3g\n", nproc, diff);
    EXPECT_LE(diff, 1e-6);
    const auto a = losses(single()), b = losses(run_id);
    ASSERT_EQ(a.size(), 5u);
    ASSERT_EQ(b.size(), 5u);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << "train_loss of step " << i + 1;
    // Only rank 0 wrote: one log with each step once, and no file from another rank.
    const std::string log = test::read_file(*dir / "runs" / run_id / "train.log");
    size_t count = 0;
    for (size_t at = 0; (at = log.find("step:5/5 train_loss:", at)) != std::string::npos; ++at) ++count;
    EXPECT_EQ(count, 1u) << log;
    EXPECT_EQ(r.output.find("[rank 1] step:"), std::string::npos) << "other ranks do not log";
    // The preflight's plan ran once, in the launcher: its workers (rank 0's lines pass through
    // unprefixed) did not plan again.
    EXPECT_EQ(count_lines_with(r.output, "plan: predicted artifact"), 1) << r.output;
  }
};

TEST_F(DistTrain, TwoProcessesEqualOneProcessWithTheSameGlobalBatch) { expect_equal_to_single("two", 2); }

TEST_F(DistTrain, FourProcessesEqualOneProcessWithTheSameGlobalBatch) { expect_equal_to_single("four", 4); }

// A wall-clock run on two processes: rank 0's clock is broadcast only every 4 steps
// (GOLF_CLOCK_SYNC_EVERY, train/shared_clock.h) and estimated alike on both ranks in between. If
// the ranks disagreed on the schedule or on the stop, one would wait in a collective the other
// never joins (a timeout, non-zero exit). The stop is decided on rank 0's real clock: the last
// logged train time has reached the budget (MAX_WALLCLOCK_SECONDS − GPTQ_RESERVE_SECONDS = 4 s).
TEST_F(DistTrain, AWallclockRunStopsEveryRankAtTheSameStep) {
  const auto r = train("clock", "--nproc 2",
                       "ITERATIONS=1000000 MAX_WALLCLOCK_SECONDS=6 GPTQ_RESERVE_SECONDS=2 CHECKPOINT_EVERY=0 "
                       "GOLF_CLOCK_SYNC_EVERY=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string log = test::read_file(*dir / "runs" / "clock" / "train.log");
  const size_t at = log.find("stopping_early: step:");
  ASSERT_NE(at, std::string::npos) << log;
  const int64_t steps = std::stoll(log.substr(at + std::strlen("stopping_early: step:")));
  std::printf("wall-clock run on 2 processes stopped after %lld steps\n", static_cast<long long>(steps));
  EXPECT_GT(steps, 8) << "the estimate between broadcasts must be exercised";
  EXPECT_LT(steps, 1000000);
  double last_ms = 0;
  std::ifstream in(*dir / "runs" / "clock" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "train") last_ms = j["train_time_ms"].get<double>();
  }
  EXPECT_GE(last_ms, 4000.0);
}

// Node 0 of a two-"node" job is started by the launcher (--nnodes 2 --node-rank 0); rank 1 is
// started by hand with torchrun's variables, as a second node or a real torchrun would. The job
// is the same computation as the two-process launcher run.
TEST_F(DistTrain, AWorkerStartedByHandWithTorchrunVariablesJoinsALauncherJob) {
  const int port = test::free_port();
  const std::string p = std::to_string(port);
  const pid_t launcher = spawn_shell("timeout -k 5 100 " + env("joined") + "'" + GOLF_TRAIN_BIN +
                                     "' --nproc 1 --nnodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port " + p +
                                     " > " + quote(*dir / "joined-launcher.out") + " 2>&1");
  const pid_t worker = spawn_shell("timeout -k 5 100 " + env("joined") +
                                   " RANK=1 LOCAL_RANK=0 WORLD_SIZE=2 LOCAL_WORLD_SIZE=1 GROUP_RANK=1 MASTER_ADDR=127.0.0.1"
                                   " MASTER_PORT=" + p + " '" + GOLF_TRAIN_BIN + "' > " +
                                   quote(*dir / "joined-worker.out") + " 2>&1");
  const auto ls = wait_for(launcher, std::chrono::seconds(110));
  const auto ws = wait_for(worker, std::chrono::seconds(20));
  ASSERT_TRUE(ls && ws) << "timed out";
  EXPECT_EQ(*ls, 0) << test::read_file(*dir / "joined-launcher.out");
  EXPECT_EQ(*ws, 0) << test::read_file(*dir / "joined-worker.out");
  const std::string out = test::read_file(*dir / "joined-launcher.out");
  EXPECT_NE(out.find("world_size:2 grad_accum_steps:4"), std::string::npos) << out;
  const double diff = max_abs_diff(weights(*dir / "runs" / single() / "final_model.safetensors"),
                                   weights(*dir / "runs" / "joined" / "final_model.safetensors"));
  std::printf("1 process vs launcher + hand-started worker: max |weight difference| = %.3g\n", diff);
  EXPECT_LE(diff, 1e-6);
  // The launcher planned; its worker (rank 0, GOLF_LAUNCHER_PID) and the hand-started rank 1 did not.
  EXPECT_EQ(count_lines_with(out, "plan: predicted artifact"), 1) << out;
  EXPECT_EQ(count_lines_with(test::read_file(*dir / "joined-worker.out"), "plan:"), 0);
}

// Under an external launcher (torchrun, Slurm: every process a worker, no GOLF_LAUNCHER_PID) rank 0
// plans, once, and the other ranks do not. A plan over the budget is one error on rank 0, and the
// other ranks stop at once naming rank 0 instead of waiting for it until DIST_TIMEOUT_SECONDS (60).
TEST_F(DistTrain, UnderAnExternalLauncherRankZeroPlansOnceAndItsRefusalStopsEveryRank) {
  struct Job {
    std::optional<int> status[2];
    std::string out[2];
    double seconds = 0;
  };
  auto run_job = [&](const std::string& run_id, const std::string& extra) {
    const std::string p = std::to_string(test::free_port());
    pid_t pid[2];
    const auto start = Clock::now();
    for (int rank = 0; rank < 2; ++rank)
      pid[rank] = spawn_shell("timeout -k 5 100 " + env(run_id, extra) + " RANK=" + std::to_string(rank) +
                              " LOCAL_RANK=" + std::to_string(rank) + " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2"
                              " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + p + " '" + GOLF_TRAIN_BIN + "' > " +
                              quote(*dir / (run_id + std::to_string(rank) + ".out")) + " 2>&1");
    Job job;
    for (int rank = 0; rank < 2; ++rank) {
      job.status[rank] = wait_for(pid[rank], std::chrono::seconds(110));
      job.out[rank] = test::read_file(*dir / (run_id + std::to_string(rank) + ".out"));
    }
    job.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return job;
  };
  const Job ok = run_job("external", "");
  ASSERT_TRUE(ok.status[0] && ok.status[1]) << "timed out";
  EXPECT_EQ(*ok.status[0], 0) << ok.out[0];
  EXPECT_EQ(*ok.status[1], 0) << ok.out[1];
  EXPECT_EQ(count_lines_with(ok.out[0], "plan: predicted artifact"), 1) << ok.out[0];
  EXPECT_EQ(count_lines_with(ok.out[1], "plan:"), 0) << ok.out[1];
  EXPECT_LT(ok.out[0].find("plan: predicted artifact"), ok.out[0].find("step:1/5")) << "the plan comes first";

  const Job refused = run_job("external-over", "ARTIFACT_BUDGET=1000");
  ASSERT_TRUE(refused.status[0] && refused.status[1]) << "timed out";
  std::printf("external launcher, plan over the budget: both ranks exited after %.1f s\n", refused.seconds);
  EXPECT_LT(refused.seconds, 30.0) << "rank 1 waited for rank 0";
  EXPECT_TRUE(WIFEXITED(*refused.status[0]) && WEXITSTATUS(*refused.status[0]) == 1) << refused.out[0];
  EXPECT_TRUE(WIFEXITED(*refused.status[1]) && WEXITSTATUS(*refused.status[1]) != 0) << refused.out[1];
  EXPECT_EQ(count_lines_with(refused.out[0], "golf-train: error: "), 1) << refused.out[0];
  EXPECT_NE(refused.out[0].find("--allow-over-budget"), std::string::npos) << refused.out[0];
  EXPECT_NE(refused.out[1].find("rank 0 refused the run"), std::string::npos) << refused.out[1];
  EXPECT_EQ(count_lines_with(refused.out[1], "plan:"), 0) << refused.out[1];
  EXPECT_FALSE(std::filesystem::exists(*dir / "runs" / "external-over")) << "nothing may be written";
}

// kill -9 of one worker: the launcher names the rank and how it died, stops the other worker and
// exits non-zero well within 30 s, leaving no process behind.
TEST_F(DistTrain, AKilledWorkerStopsTheJobNamingTheRank) {
  const std::filesystem::path out = *dir / "kill.out";
  const pid_t launcher = spawn_shell(env("kill", "ITERATIONS=1000000 CHECKPOINT_EVERY=0") + "'" + GOLF_TRAIN_BIN +
                                     "' --nproc 2 > " + quote(out) + " 2>&1");
  // Wait for training to be under way (rank 0 logs its steps).
  const auto start = Clock::now();
  while (test::read_file(out).find("step:2/") == std::string::npos && Clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_NE(test::read_file(out).find("step:2/"), std::string::npos) << test::read_file(out);
  pid_t victim = -1, survivor = -1;
  for (const pid_t c : children_of(launcher)) (env_of(c, "RANK") == "1" ? victim : survivor) = c;
  ASSERT_GT(victim, 0);
  ASSERT_GT(survivor, 0);
  const auto killed_at = Clock::now();
  ::kill(victim, SIGKILL);
  const auto status = wait_for(launcher, std::chrono::seconds(40));
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ASSERT_TRUE(status) << "the launcher did not exit: " << test::read_file(out);
  std::printf("kill -9 of rank 1: launcher exited %.2f s later with status %d\n", seconds, WEXITSTATUS(*status));
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0);
  const std::string text = test::read_file(out);
  EXPECT_NE(text.find("rank 1 (pid " + std::to_string(victim) + ") was killed by signal 9"), std::string::npos) << text;
  EXPECT_FALSE(process_exists(survivor)) << "rank 0 must be stopped and reaped";
}

// Ctrl-C (SIGINT to the launcher) stops every worker; exit status 128 + 2.
TEST_F(DistTrain, SigintStopsEveryWorker) {
  const std::filesystem::path out = *dir / "sigint.out";
  const pid_t launcher = spawn_shell(env("sigint", "ITERATIONS=1000000 CHECKPOINT_EVERY=0") + "'" + GOLF_TRAIN_BIN +
                                     "' --nproc 2 > " + quote(out) + " 2>&1");
  const auto start = Clock::now();
  while (test::read_file(out).find("step:1/") == std::string::npos && Clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto workers = children_of(launcher);
  ASSERT_EQ(workers.size(), 2u) << test::read_file(out);
  ::kill(launcher, SIGINT);
  const auto status = wait_for(launcher, std::chrono::seconds(30));
  ASSERT_TRUE(status) << test::read_file(out);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 130) << *status << test::read_file(out);
  for (const pid_t w : workers) EXPECT_FALSE(process_exists(w)) << "worker " << w << " survived";
}

TEST_F(DistTrain, BadLauncherOptionsAreOneClearError) {
  auto r = train("bad1", "--nproc 0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--nproc 0"), std::string::npos) << r.output;
  r = train("bad2", "--nproc 2 --nnodes 2 --node-rank 2 --master-port 29999");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--node-rank 2"), std::string::npos) << r.output;
  r = train("bad3", "--nproc 1 --nnodes 2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--master-port"), std::string::npos) << r.output;
  // A bad configuration is reported once, by the launcher, before any worker starts.
  r = train("bad4", "--nproc 2", "NUM_HEADS=3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NUM_HEADS=3"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[rank"), std::string::npos) << r.output;
  // A worker's error reaches the launcher's output, attributed to its rank.
  r = train("bad5", "--nproc 2", "DATA_PATH=/nonexistent");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("[rank 0] golf-train: error:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/nonexistent"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace golf
