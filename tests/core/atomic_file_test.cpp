// Atomic outputs: complete or absent, and an existing file is untouched until commit.
#include "core/atomic_file.h"

#include "core/error.h"
#include "tests/test_util.h"

namespace golf {
namespace {

TEST(AtomicFile, AppearsOnlyOnCommit) {
  test::TempDir dir;
  AtomicFile f(dir / "out.json");
  f.write("{}");
  EXPECT_FALSE(std::filesystem::exists(dir / "out.json"));
  f.commit();
  EXPECT_EQ(test::read_file(dir / "out.json"), "{}");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, AbandonedWriteKeepsTheOldFile) {
  test::TempDir dir;
  test::write_file(dir / "out.json", "old");
  {
    AtomicFile f(dir / "out.json");
    f.write("new, but never committed");
  }
  EXPECT_EQ(test::read_file(dir / "out.json"), "old");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, UnwritableTargetIsAnError) {
  test::TempDir dir;
  test::write_file(dir / "file", "x");
  EXPECT_THROW(AtomicFile(dir / "file" / "sub.json"), Error);
}

}  // namespace
}  // namespace golf
