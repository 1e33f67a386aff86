// tests/test_util.h — what many tests need: the shared corpus, scratch directories, running a
// CLI or the Python reference and capturing its exit status and output.
#pragma once
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace golf::test {

namespace fs = std::filesystem;

// The paths a test binary needs (the python, the sources, the tool binaries, fixture folders) are
// baked in at build time as GOLF_X_DEFAULT (tests/CMakeLists.txt) and read through GOLF_X, which
// takes the environment variable GOLF_X first when it is set and not empty. ctest sets none, so it
// runs on the build paths; the GPU kit (scripts/gpu/check.sh) runs the same binaries from a copy
// of the tree where those paths do not exist.
inline const char* path_setting(const char* env_name, const char* build_default) {
  const char* v = std::getenv(env_name);
  return v && *v ? v : build_default;
}
#define GOLF_PYTHON ::golf::test::path_setting("GOLF_PYTHON", GOLF_PYTHON_DEFAULT)
#define GOLF_REFERENCE_DIR ::golf::test::path_setting("GOLF_REFERENCE_DIR", GOLF_REFERENCE_DIR_DEFAULT)
#define GOLF_SHARED_DIR ::golf::test::path_setting("GOLF_SHARED_DIR", GOLF_SHARED_DIR_DEFAULT)
#ifdef GOLF_SOURCE_DIR_DEFAULT
#define GOLF_SOURCE_DIR ::golf::test::path_setting("GOLF_SOURCE_DIR", GOLF_SOURCE_DIR_DEFAULT)
#endif
#ifdef GOLF_DATA_BIN_DEFAULT
#define GOLF_DATA_BIN ::golf::test::path_setting("GOLF_DATA_BIN", GOLF_DATA_BIN_DEFAULT)
#endif
#ifdef GOLF_TRAIN_BIN_DEFAULT
#define GOLF_TRAIN_BIN ::golf::test::path_setting("GOLF_TRAIN_BIN", GOLF_TRAIN_BIN_DEFAULT)
#endif
#ifdef GOLF_PACK_BIN_DEFAULT
#define GOLF_PACK_BIN ::golf::test::path_setting("GOLF_PACK_BIN", GOLF_PACK_BIN_DEFAULT)
#endif
#ifdef GOLF_EVAL_BIN_DEFAULT
#define GOLF_EVAL_BIN ::golf::test::path_setting("GOLF_EVAL_BIN", GOLF_EVAL_BIN_DEFAULT)
#endif
#ifdef GOLF_TWIN_DIR_DEFAULT
#define GOLF_TWIN_DIR ::golf::test::path_setting("GOLF_TWIN_DIR", GOLF_TWIN_DIR_DEFAULT)
#endif
#ifdef GOLF_EVAL_FIXTURE_DIR_DEFAULT
#define GOLF_EVAL_FIXTURE_DIR ::golf::test::path_setting("GOLF_EVAL_FIXTURE_DIR", GOLF_EVAL_FIXTURE_DIR_DEFAULT)
#endif

// ../shared beside the checkout (GOLF_SHARED_DIR); GOLF_DATA_DIR overrides the data folder and
// GOLF_TOKENIZER_DIR the tokenizer folder (as for the demo).
inline fs::path data_dir() {
  if (const char* d = std::getenv("GOLF_DATA_DIR")) return d;
  return fs::path(GOLF_SHARED_DIR) / "data";
}
inline fs::path tokenizer_dir() {
  if (const char* d = std::getenv("GOLF_TOKENIZER_DIR")) return d;
  return fs::path(GOLF_SHARED_DIR) / "tokenizers";
}
inline fs::path challenge_tokenizer() { return tokenizer_dir() / "fineweb_8192_bpe.model"; }
inline fs::path tiny_shakespeare() { return data_dir() / "tinyshakespeare.txt"; }

// Skips the calling test when a shared file is absent (a checkout without ../shared).
#define GOLF_REQUIRE_FILE(path)                                                             \
  do {                                                                                       \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing shared file " << (path);    \
  } while (0)

// A fresh directory under the system temp dir, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "golf-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  // Every entry name in the directory (hidden temporaries included), sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

// The message of the golf::Error that `f` throws, or "" when it throws none (anything else escapes
// and fails the calling test).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const golf::Error& e) {
    return e.what();
  }
  return "";
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its combined output.
inline CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// A TCP port on the loopback interface that was free a moment ago (for rendezvous stores in tests).
inline int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// Appended piece by piece: GCC 12's -Wrestrict misreads `"'" + p.string() + "'"` once inlined.
inline std::string quote(const fs::path& p) {
  std::string out = "'";
  out += p.string();
  out += '\'';
  return out;
}

// Runs tests/reference/<script> with the pinned venv's python.
inline CommandResult run_reference(const std::string& script, const std::string& args) {
  return run(std::string("'") + GOLF_PYTHON + "' '" + GOLF_REFERENCE_DIR + "/" + script + "' " + args);
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

// Tiny Shakespeare as a training corpus, made with the real golf-data binary in `dir`: the
// nanoGPT 90/10 split, a 512-piece tokenizer (dir/tok.model) and shards in dir/data. The shell
// command line that does it, for tests to run (and append to) in their suite set-up.
inline std::string tiny_shakespeare_corpus_command(const fs::path& dir, const std::string& golf_data_bin) {
  const std::string text = read_file(tiny_shakespeare());
  write_file(dir / "train.txt", text.substr(0, text.size() * 9 / 10));
  write_file(dir / "val.txt", text.substr(text.size() * 9 / 10));
  const std::string data = "'" + golf_data_bin + "' ";
  return data + "tokenizer --input " + quote(dir / "train.txt") + " --vocab 512 --out " + quote(dir / "tok.model") +
         " && " + data + "shards --input " + quote(dir / "train.txt") + " --tokenizer " + quote(dir / "tok.model") +
         " --out " + quote(dir / "data") + " --split train && " + data + "shards --input " + quote(dir / "val.txt") +
         " --tokenizer " + quote(dir / "tok.model") + " --out " + quote(dir / "data") + " --split val";
}

// A suite whose tests share one scratch folder (`dir`), made once before its first test by the
// shell command Suite::setup_command(folder) — the Tiny Shakespeare corpus (above), and whatever
// runs the suite appends; every test needs the text and a set-up that succeeded.
template <class Suite>
class SharedSetupSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(tiny_shakespeare())) return;
    dir = new TempDir;
    setup = new CommandResult(run(Suite::setup_command(dir->path())));
  }
  static void TearDownTestSuite() {
    delete dir;
    delete setup;
    dir = nullptr;
    setup = nullptr;
  }
  void SetUp() override {
    GOLF_REQUIRE_FILE(tiny_shakespeare());
    ASSERT_EQ(setup->exit_code, 0) << setup->output;
  }
  static inline TempDir* dir = nullptr;
  static inline CommandResult* setup = nullptr;
};

}  // namespace golf::test
