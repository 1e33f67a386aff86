// tests/host_reads.h — records, on the calling thread, every ATen call that reads a tensor's values
// back to the host: the calls that on CUDA wait for the device (a sync) and that CUDA graph
// capture refuses. Works on the CPU, where the same calls are made, so the no-sync fast paths are
// checked without a GPU.
//
// Counted, when made directly by golf's code (not from inside another ATen op, e.g. the CPU
// kernel of _fused_adamw_ reading its lr, which its CUDA kernel does not):
//   aten::item / aten::_local_scalar_dense   (.item<T>())
//   aten::nonzero, is_nonzero, equal, allclose, unique*, masked_select  (data-dependent results)
//   aten::to / aten::_to_copy with an explicit CPU device  (.cpu(), .to(kCPU)): on a CUDA model
//     a device→host copy. (On a CPU model a `.to(device())` names the CPU too: the code under test
//     skips such same-device moves.)
// Not seen: reads through data_ptr() (no dispatcher call); golf's forward has none on device data.
#pragma once
#include <ATen/record_function.h>

#include <string>
#include <vector>

namespace golf::test {

class HostReads {
 public:
  HostReads() {
    state().reads.clear();
    state().depth = 0;
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&on_start, &on_end).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
  }
  ~HostReads() { stop(); }
  HostReads(const HostReads&) = delete;
  HostReads& operator=(const HostReads&) = delete;

  // Stops recording; returns the names of the reads seen, in order.
  const std::vector<std::string>& stop() {
    if (handle_ != 0) at::removeCallback(handle_), handle_ = 0;
    return state().reads;
  }

 private:
  struct State {
    std::vector<std::string> reads;
    int depth = 0;  // ATen calls in progress on this thread
  };
  static State& state() {
    thread_local State s;
    return s;
  }

  static bool names_cpu(const at::RecordFunction& fn) {
    for (const c10::IValue& v : fn.inputs())
      if (v.isDevice() && v.toDevice().is_cpu()) return true;
    return false;
  }

  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    State& s = state();
    if (s.depth++ == 0) {
      const std::string name = fn.name();
      const bool read = name == "aten::item" || name == "aten::_local_scalar_dense" || name == "aten::nonzero" ||
                        name == "aten::is_nonzero" || name == "aten::equal" || name == "aten::allclose" ||
                        name.rfind("aten::unique", 0) == 0 || name == "aten::masked_select" ||
                        ((name == "aten::to" || name == "aten::_to_copy") && names_cpu(fn));
      if (read) s.reads.push_back(name);
    }
    return nullptr;
  }
  static void on_end(const at::RecordFunction&, at::ObserverContext*) { --state().depth; }

  at::CallbackHandle handle_ = 0;
};

}  // namespace golf::test
