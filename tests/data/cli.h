// tests/data/cli.h — running the real golf-data binary, as a user would.
#pragma once
#include "tests/test_util.h"

namespace golf::test {

inline CommandResult golf_data(const std::string& args) { return run(std::string("'") + GOLF_DATA_BIN + "' " + args); }

// A small corpus of real text: the first `docs` documents of Gutenberg val as .jsonl.
inline fs::path small_jsonl(const TempDir& dir, int docs) {
  const fs::path out = dir / "small.jsonl";
  const auto r = run("xz -dc " + quote(data_dir() / "gutenberg" / "val.jsonl.xz") + " | head -n " +
                     std::to_string(docs) + " > " + quote(out));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

}  // namespace golf::test
