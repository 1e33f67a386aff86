// Declaration-only stand-in (see ../README.txt). ProcessGroupGloo::setTimeout (inline) calls
// Context::setTimeout; the declaration matches gloo's (defined in libtorch_cpu). Never odr-used here.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo
