// core/error.h — the one exception type for failures a user can fix (bad file, bad value).
// CLIs catch golf::Error, print its message once, and exit non-zero; anything else is a bug.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <utility>

namespace golf {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace golf
