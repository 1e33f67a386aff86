// core/main_error.h — the one error handler of every golf-* main. Called inside `catch (...)`:
//   golf::Error (bad input, already one clear sentence) → "PROGRAM: error: …" on stderr, exit 1
//   any other exception (a bug)                         → "PROGRAM: internal error: …", exit 2
//     int main(...) { try { … } catch (...) { return golf::main_error("golf-pack"); } }
#pragma once
#include <cstdio>
#include <exception>

#include "core/error.h"

namespace golf {

inline int main_error(const char* program) {
  try {
    throw;  // the exception being handled
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", program, e.what());
    return 2;
  } catch (...) {
    std::fprintf(stderr, "%s: internal error: unknown exception\n", program);
    return 2;
  }
}

}  // namespace golf
