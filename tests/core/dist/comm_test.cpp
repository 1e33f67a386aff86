// core/dist/comm: the torchrun environment parsing, the single-process identity, and every
// collective over real Gloo between forked processes on 127.0.0.1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <functional>

#include "core/dist/comm.h"
#include "core/dist/launcher.h"
#include "tests/test_util.h"

namespace golf::dist {
namespace {

// Sets environment variables for the scope of a test; restores the previous values afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [k, v] : vars) {
      const char* old = std::getenv(k);
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) ::setenv(k, v, 1); else ::unsetenv(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : saved_) v ? (void)::setenv(k.c_str(), v->c_str(), 1) : (void)::unsetenv(k.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(WorldFromEnv, SingleProcessWithoutRank) {
  ScopedEnv env{{"RANK", nullptr}, {"WORLD_SIZE", nullptr}};
  const World w = world_from_env();
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.world_size, 1);
  EXPECT_TRUE(w.main());
  EXPECT_FALSE(is_worker());
}

TEST(WorldFromEnv, ReadsTorchrunVariables) {
  ScopedEnv env{{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"}};
  const World w = world_from_env();
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_world_size, 4);
  EXPECT_FALSE(w.main());
  EXPECT_TRUE(is_worker());
}

TEST(WorldFromEnv, BadValuesAreNamed) {
  {
    ScopedEnv env{{"RANK", "2"}, {"WORLD_SIZE", "2"}};
    EXPECT_NE(test::error_of([] { world_from_env(); }).find("RANK=2"), std::string::npos);
  }
  {
    ScopedEnv env{{"RANK", "x1"}, {"WORLD_SIZE", "2"}};
    EXPECT_NE(test::error_of([] { world_from_env(); }).find("RANK=\"x1\""), std::string::npos);
  }
  {
    ScopedEnv env{{"RANK", "0"}, {"WORLD_SIZE", nullptr}};
    EXPECT_NE(test::error_of([] { world_from_env(); }).find("WORLD_SIZE"), std::string::npos);
  }
}

TEST(Comm, SingleProcessIsTheIdentity) {
  Comm comm(World{}, at::Device(at::kCPU), std::chrono::seconds(1));
  EXPECT_EQ(comm.backend(), "none");
  at::Tensor t = at::arange(6, at::kFloat);
  const at::Tensor before = t.clone();
  comm.all_reduce_avg(t);
  comm.all_reduce_sum(t);
  comm.broadcast(t);
  comm.barrier();
  EXPECT_TRUE(at::equal(t, before));
  at::Tensor out = at::zeros(6);
  comm.reduce_scatter_avg(out, t).wait();
  EXPECT_TRUE(at::equal(out, before));
}

// Runs `body(comm)` in `world` forked processes joined by Gloo; returns each one's exit status
// (0 when body returned without a failed check or exception). Children are killed after 60 s.
std::vector<int> run_ranks(int world, const std::function<bool(Comm&)>& body) {
  const std::string port = std::to_string(test::free_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(60);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      int code = 1;
      try {
        Comm comm(World{r, world, r, world}, at::Device(at::kCPU), std::chrono::seconds(30));
        code = comm.backend() == "gloo" && body(comm) ? 0 : 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<int> status;
  for (const pid_t p : pids) {
    int s = 0;
    ::waitpid(p, &s, 0);
    status.push_back(s);
  }
  return status;
}

TEST(Comm, GlooCollectivesBetweenThreeProcesses) {
  const auto status = run_ranks(3, [](Comm& c) {
    const double r = c.rank();
    bool ok = true;
    // all-reduce: rank r contributes (r+1)·[1, 2]; sum 6·[1, 2], mean 2·[1, 2]
    at::Tensor t = at::tensor({1.0f, 2.0f}) * (r + 1);
    c.all_reduce_sum(t);
    ok &= at::allclose(t, at::tensor({6.0f, 12.0f}));
    t = at::tensor({1.0f, 2.0f}) * (r + 1);
    c.all_reduce_avg(t);
    ok &= at::allclose(t, at::tensor({2.0f, 4.0f}));
    std::vector<double> v{r, 1.0};
    c.all_reduce_sum(v);
    ok &= v[0] == 3.0 && v[1] == 3.0;
    // broadcast from rank 2
    at::Tensor b = at::full({3}, r);
    c.broadcast(b, 2);
    ok &= at::equal(b, at::full({3}, 2.0f));
    // reduce-scatter: input rows j hold r·10 + j; rank k gets the mean over r of row k: 10 + k
    at::Tensor in = at::arange(3, at::kFloat).reshape({3, 1}) + 10 * r;
    at::Tensor out = at::zeros({1, 1});
    c.reduce_scatter_avg(out, in).wait();
    ok &= std::abs(out.item<float>() - (10.0f + r)) < 1e-6f;
    // all-gather: every rank ends with [0, 1, 2]
    at::Tensor all = at::zeros({3, 2});
    c.all_gather(all, at::full({1, 2}, r)).wait();
    ok &= at::equal(all, at::arange(3, at::kFloat).reshape({3, 1}).expand({3, 2}));
    c.barrier();
    return ok;
  });
  for (size_t r = 0; r < status.size(); ++r) EXPECT_EQ(status[r], 0) << "rank " << r;
}

// A peer that dies mid-job makes the survivors' next collective fail with an error naming the
// operation and the rank, instead of hanging.
TEST(Comm, APeerThatDiesFailsTheCollectiveWithANamedError) {
  const auto status = run_ranks(2, [](Comm& c) {
    c.barrier();
    if (c.rank() == 1) ::_exit(3);
    at::Tensor t = at::ones(4);
    const std::string err = test::error_of([&] { c.all_reduce_sum(t); });
    std::fprintf(stderr, "rank 0 saw: %s\n", err.c_str());
    return err.find("rank 0/2: all_reduce failed") != std::string::npos;
  });
  EXPECT_EQ(status[0], 0);
  EXPECT_TRUE(WIFEXITED(status[1]) && WEXITSTATUS(status[1]) == 3);
}

}  // namespace
}  // namespace golf::dist
