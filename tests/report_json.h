// tests/report_json.h — comparing a stage's report JSON (eval.json, F.golf.json) between two runs
// and against the stage's report schema (`--print-report-schema`).
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>

namespace golf::test {

// Every key path of a document: "a", "a.b", "rows[].name" (the elements of a list merged).
inline void collect_key_paths(const nlohmann::json& j, const std::string& prefix, std::set<std::string>& out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      out.insert(path);
      collect_key_paths(value, path, out);
    }
  } else if (j.is_array()) {
    for (const auto& element : j) collect_key_paths(element, prefix + "[]", out);
  }
}
inline std::set<std::string> key_paths(const nlohmann::json& j) {
  std::set<std::string> out;
  collect_key_paths(j, "", out);
  return out;
}

// a and b hold the same keys everywhere and equal values, except that values under a key named in
// `varying` (wall-clock times) may differ.
inline void expect_same_report(const nlohmann::json& a, const nlohmann::json& b, const std::set<std::string>& varying,
                               const std::string& path = "") {
  if (a.is_object() && b.is_object()) {
    EXPECT_EQ(key_paths(a), key_paths(b)) << "at " << (path.empty() ? "the top" : path);
    for (const auto& [key, value] : a.items())
      if (b.contains(key) && !varying.contains(key)) expect_same_report(value, b[key], varying, path + "." + key);
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << "at " << path;
    for (size_t i = 0; i < a.size(); ++i) expect_same_report(a[i], b[i], varying, path + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(a, b) << "at " << path;
  }
}

}  // namespace golf::test
