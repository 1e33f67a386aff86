// core/dist/launcher.cpp — fork/exec of the workers, their environment, output relay, faults.
//
// One single-threaded event loop: poll() over a signalfd (SIGCHLD, SIGINT, SIGTERM, SIGHUP are
// blocked and read from it, so no handler races the loop) and the read ends of every worker's
// stdout/stderr pipes. Children get the original signal mask back before exec.
#include "core/dist/launcher.h"

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <algorithm>
#include <string>
#include <vector>

namespace golf::dist {

namespace {

using Clock = std::chrono::steady_clock;

struct Stream {
  int fd = -1;      // read end; -1 once closed
  bool err = false; // worker's stderr (else stdout)
  std::string pending;  // bytes after the last newline
};

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;  // waitpid status once reaped
  Stream out, err;
};

void say(const char* fmt_line, const std::string& a = "") {
  std::fprintf(stderr, fmt_line, a.c_str());
  std::fflush(stderr);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    const char* name = sigabbrev_np(s);
    return "was killed by signal " + std::to_string(s) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "stopped with wait status " + std::to_string(status);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// A port that was free a moment ago (bind to port 0, read it back, close): torchrun --standalone
// does the same. The TCPStore binds it again a second later; a collision is possible but rare.
int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

// Relays complete lines of `s`; at EOF (final) also the unterminated rest.
void relay(Stream& s, int rank, bool final) {
  size_t start = 0;
  for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = s.pending.substr(start, nl - start + 1);
    if (rank == 0 && !s.err) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
    } else {
      std::FILE* f = s.err ? stderr : stdout;
      std::fprintf(f, "[rank %d] %s", rank, line.c_str());
      std::fflush(f);
    }
  }
  s.pending.erase(0, start);
  if (final && !s.pending.empty()) {
    s.pending += '\n';
    relay(s, rank, false);
  }
}

// Reads what is available on s.fd; closes it at EOF.
void drain(Stream& s, int rank) {
  char buf[65536];
  const ssize_t n = ::read(s.fd, buf, sizeof buf);
  if (n > 0) {
    s.pending.append(buf, static_cast<size_t>(n));
    relay(s, rank, false);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    ::close(s.fd);
    s.fd = -1;
    relay(s, rank, true);
  }
}

// In the child between fork and exec: only async-signal-safe calls (plus setenv, which is safe
// here because the launcher is single-threaded while it forks).
[[noreturn]] void exec_worker(const std::vector<std::pair<std::string, std::string>>& env, int out_fd, int err_fd,
                              const sigset_t& old_mask, pid_t launcher, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // die with the launcher, even a SIGKILLed one
  if (::getppid() != launcher) ::_exit(127);
  ::setpgid(0, 0);  // its own group: stopping a worker also stops anything it started
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::execv("/proc/self/exe", argv);
  const char msg[] = "golf launcher: cannot exec /proc/self/exe\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(127);
}

}  // namespace

void add_launch_options(CLI::App& app, LaunchOptions& o) {
  app.add_option("--nproc", o.nproc_per_node, "worker processes on this node (one per GPU); > 1 starts a distributed run")
      ->group("Distributed");
  app.add_option("--nnodes", o.nnodes, "number of nodes (run the same command on each)")->group("Distributed");
  app.add_option("--node-rank", o.node_rank, "this node's index in [0, nnodes)")->group("Distributed");
  app.add_option("--master-addr", o.master_addr, "address of node 0, where rank 0 hosts the rendezvous store")
      ->group("Distributed");
  app.add_option("--master-port", o.master_port, "rendezvous port on node 0 (0: a free port; single node only)")
      ->group("Distributed");
}

bool is_worker() { return std::getenv("RANK") != nullptr; }

bool should_launch(const LaunchOptions& o) {
  return !is_worker() && (o.nproc_per_node != 1 || o.nnodes != 1 || o.node_rank != 0);
}

double kill_grace_seconds() {
  if (const char* v = std::getenv("GOLF_KILL_GRACE_SECONDS")) {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (*v && !*end && s >= 0) return s;
  }
  return 5.0;
}

int launch(const LaunchOptions& o, int /*argc*/, char** argv) {
  // ---- options ----
  auto bad = [](const std::string& msg) {
    say("golf launcher: error: %s\n", msg);
    return 1;
  };
  if (o.nproc_per_node < 1) return bad("--nproc " + std::to_string(o.nproc_per_node) + " must be at least 1");
  if (o.nnodes < 1) return bad("--nnodes " + std::to_string(o.nnodes) + " must be at least 1");
  if (o.node_rank < 0 || o.node_rank >= o.nnodes)
    return bad("--node-rank " + std::to_string(o.node_rank) + " must be in [0, --nnodes " + std::to_string(o.nnodes) + ")");
  if (o.master_port < 0 || o.master_port > 65535)
    return bad("--master-port " + std::to_string(o.master_port) + " must be in [0, 65535]");
  if (o.nnodes > 1 && o.master_port == 0)
    return bad("--nnodes " + std::to_string(o.nnodes) + " needs an explicit --master-port, the same on every node");
  if (o.master_addr.empty()) return bad("--master-addr is empty");
  int port = o.master_port;
  if (port == 0 && (port = free_port()) <= 0) return bad(std::string("cannot find a free port: ") + std::strerror(errno));

  // ---- signals: blocked here, read from a signalfd in the loop ----
  sigset_t mask, old_mask;
  sigemptyset(&mask);
  for (const int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&mask, s);
  ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
  const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return bad(std::string("signalfd: ") + std::strerror(errno));
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill the supervisor

  // ---- start the workers ----
  const int world = o.world_size();
  const pid_t self = ::getpid();
  const std::string run_id = "golf-" + std::to_string(self);
  std::vector<Worker> workers(static_cast<size_t>(o.nproc_per_node));
  int failure_code = 0;  // the launcher's exit code once something went wrong
  for (int i = 0; i < o.nproc_per_node; ++i) {
    Worker& w = workers[static_cast<size_t>(i)];
    w.rank = o.node_rank * o.nproc_per_node + i;
    std::vector<std::pair<std::string, std::string>> env = {
        {"RANK", std::to_string(w.rank)},
        {"LOCAL_RANK", std::to_string(i)},
        {"WORLD_SIZE", std::to_string(world)},
        {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
        {"GROUP_RANK", std::to_string(o.node_rank)},
        {"ROLE_RANK", std::to_string(w.rank)},
        {"ROLE_WORLD_SIZE", std::to_string(world)},
        {"MASTER_ADDR", o.master_addr},
        {"MASTER_PORT", std::to_string(port)},
        {"TORCHELASTIC_RESTART_COUNT", "0"},
        {"GOLF_LAUNCHER_PID", std::to_string(self)},  // golf's own launcher: it already ran the preflight
        {"TORCHELASTIC_MAX_RESTARTS", "0"},
        {"TORCHELASTIC_RUN_ID", run_id},
    };
    if (o.nproc_per_node > 1 && !std::getenv("OMP_NUM_THREADS")) env.emplace_back("OMP_NUM_THREADS", "1");
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      say("golf launcher: error: pipe: %s\n", std::strerror(errno));
      failure_code = 1;
      break;
    }
    const pid_t pid = ::fork();
    if (pid == 0) exec_worker(env, out[1], err[1], old_mask, self, argv);
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) {
      ::close(out[0]);
      ::close(err[0]);
      say("golf launcher: error: fork: %s\n", std::strerror(errno));
      failure_code = 1;
      break;
    }
    ::setpgid(pid, pid);  // also here, so the group exists before any killpg below
    w.pid = pid;
    w.running = true;
    w.out = {out[0], false, {}};
    w.err = {err[0], true, {}};
  }

  // ---- supervise ----
  std::optional<Clock::time_point> kill_at;  // set once stopping: SIGKILL the rest at this time
  auto stop_all = [&](int sig) {
    if (kill_at) return;
    kill_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(1000 * kill_grace_seconds()));
    for (auto& w : workers)
      if (w.running) ::killpg(w.pid, sig);
  };
  if (failure_code) stop_all(SIGTERM);

  auto any_running = [&] {
    for (auto& w : workers)
      if (w.running) return true;
    return false;
  };
  Clock::time_point drain_until{};  // after the last worker exits, read its leftover output briefly
  bool all_exited_at_set = false;
  for (;;) {
    const bool running = any_running();
    if (!running && !all_exited_at_set) {
      drain_until = Clock::now() + std::chrono::milliseconds(1000);
      all_exited_at_set = true;
    }
    std::vector<pollfd> fds{{sfd, POLLIN, 0}};
    std::vector<Stream*> streams{nullptr};
    std::vector<int> ranks{-1};
    for (auto& w : workers)
      for (Stream* s : {&w.out, &w.err})
        if (s->fd >= 0) {
          fds.push_back({s->fd, POLLIN, 0});
          streams.push_back(s);
          ranks.push_back(w.rank);
        }
    if (!running && fds.size() == 1) break;
    int timeout_ms = -1;
    const auto now = Clock::now();
    if (kill_at && running)
      timeout_ms = static_cast<int>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(*kill_at - now).count()) + 1);
    if (!running) {
      if (now >= drain_until) break;  // a grandchild still holds a pipe open: stop reading
      timeout_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(drain_until - now).count()) + 1;
    }
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      say("golf launcher: error: poll: %s\n", std::strerror(errno));
      stop_all(SIGKILL);
    }
    if (kill_at && Clock::now() >= *kill_at)
      for (auto& w : workers)
        if (w.running) ::killpg(w.pid, SIGKILL);
    for (size_t k = 1; k < fds.size(); ++k)
      if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) drain(*streams[k], ranks[k]);
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        const int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) continue;  // reaped below
        if (!failure_code) {
          say("golf launcher: received %s; stopping all workers\n", std::string("SIG") + sigabbrev_np(sig));
          failure_code = 128 + sig;
        }
        // A second Ctrl-C does not wait for the grace period.
        if (kill_at) {
          for (auto& w : workers)
            if (w.running) ::killpg(w.pid, SIGKILL);
        }
        stop_all(sig == SIGHUP ? SIGTERM : sig);
      }
    }
    // Reap every worker that has exited (SIGCHLD may coalesce, so poll each pid).
    for (auto& w : workers) {
      if (!w.running) continue;
      int status = 0;
      const pid_t r = ::waitpid(w.pid, &status, WNOHANG);
      if (r != w.pid) continue;
      w.running = false;
      w.status = status;
      ::killpg(w.pid, SIGKILL);  // anything the worker left behind in its group
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !failure_code) {
        failure_code = exit_code_of(status);
        int others = 0;
        for (auto& x : workers) others += x.running;
        say("golf launcher: rank %s\n", std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") " +
                                             describe_status(status) + "; stopping the other " +
                                             std::to_string(others) + " worker(s)");
        stop_all(SIGTERM);
      }
    }
  }
  for (auto& w : workers) {
    if (w.out.fd >= 0) ::close(w.out.fd), relay(w.out, w.rank, true);
    if (w.err.fd >= 0) ::close(w.err.fd), relay(w.err, w.rank, true);
  }
  ::close(sfd);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  if (failure_code) say("golf launcher: exiting with status %s\n", std::to_string(failure_code));
  return failure_code;
}

}  // namespace golf::dist
