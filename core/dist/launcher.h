// core/dist/launcher.h — `golf-xxx --nproc N`: a torchrun-compatible launcher (torch-free).
//
// The launcher re-executes the running binary (/proc/self/exe, same argv) as N worker processes
// per node, each with torchrun's environment contract:
//   RANK = node_rank·N + i   LOCAL_RANK = i   WORLD_SIZE = nnodes·N   LOCAL_WORLD_SIZE = N
//   GROUP_RANK = node_rank   ROLE_RANK = RANK   ROLE_WORLD_SIZE = WORLD_SIZE   MASTER_ADDR, MASTER_PORT
//   TORCHELASTIC_RESTART_COUNT = 0, TORCHELASTIC_MAX_RESTARTS = 0, TORCHELASTIC_RUN_ID
//   OMP_NUM_THREADS = 1 when N > 1 (unless already set), as torchrun does
// A process that already has RANK set is a worker (is_worker()), so the same binary also runs
// under a real torchrun, under Slurm (srun with those variables), or joins a job by hand.
//
// Usage in any main:
//   golf::dist::LaunchOptions launch;
//   golf::dist::add_launch_options(app, launch);
//   CLI11_PARSE(app, argc, argv);
//   if (golf::dist::should_launch(launch)) return golf::dist::launch(launch, argc, argv);
//
// Output: each worker's stdout and stderr are read line by line. Rank 0's stdout (the run's log)
// passes through unchanged; every other line is prefixed "[rank R] " (stderr lines of rank 0 too),
// so errors of every rank reach the launcher's output, attributed.
//
// Faults (torchrun with --max-restarts 0): when a worker exits non-zero or is killed by a signal,
// the launcher reports "rank R (pid P) exited with status S" / "was killed by signal N (NAME)",
// sends SIGTERM to the other workers, SIGKILL after a grace period, reaps them all, and returns
// non-zero (S, or 128 + N). SIGINT/SIGTERM/SIGHUP to the launcher are forwarded the same way
// (Ctrl-C stops every worker; exit 128 + signal). Workers die with the launcher even if it is
// SIGKILLed (PR_SET_PDEATHSIG), so no orphans or zombies remain.
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace golf::dist {

struct LaunchOptions {
  int nproc_per_node = 1;                // --nproc
  int nnodes = 1;                        // --nnodes
  int node_rank = 0;                     // --node-rank
  std::string master_addr = "127.0.0.1"; // --master-addr (rank 0's node; reachable from every node)
  int master_port = 0;                   // --master-port; 0 → a free port (single node only)
  int world_size() const { return nproc_per_node * nnodes; }
};

// Adds --nproc, --nnodes, --node-rank, --master-addr and --master-port to `app`.
void add_launch_options(CLI::App& app, LaunchOptions& options);

// True when this process runs as a worker of a distributed job (RANK is set).
bool is_worker();
// True when this process should act as the launcher: it is not a worker and the options ask for
// anything but one local process (invalid values included, so that launch() reports them).
bool should_launch(const LaunchOptions& options);

// Starts the workers of this node and supervises them (see the top of this file); returns the
// launcher's exit code: 0 when every worker exited 0. Invalid options (nproc < 1, node_rank out of
// range, multi-node without --master-port, …) are reported on stderr naming the value, exit 1.
int launch(const LaunchOptions& options, int argc, char** argv);

// Seconds between SIGTERM and SIGKILL when stopping workers (GOLF_KILL_GRACE_SECONDS, default 5).
double kill_grace_seconds();

}  // namespace golf::dist
