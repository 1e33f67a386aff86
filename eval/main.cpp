// golf-eval — score an artifact on the validation split: plain rows, sliding window, score-first
// TTT, and the compliance checks that prove the score legal.
//
//   golf-eval ARTIFACT.golf [--out eval.json] [--ttt] [--ttt-mode sgd|lora|phased] [--no-plain] [--no-sliding] [--stride N]
//             [--check-compliance | --no-compliance] [--config F.json] [--set KEY=VALUE]...
//             [--nproc N [--nnodes …]]       (torchrun-style, as golf-train; see core/dist/launcher.h)
//   golf-eval --print-report-schema          (every key eval.json can hold, as an example report)
//
// With N ranks, every protocol cuts its windows (and TTT its training rows) into N contiguous
// shares; float64 sums, the coverage bitmap, the ledger and TTT gradients are summed across ranks.
// Rank 0 alone runs the compliance checks (on one process), prints and writes eval.json.
//
// DATA_PATH (validation shards only) and TOKENIZER_PATH come from --set, --config or the
// environment, as in golf-train. The model settings come from the artifact and cannot be changed.
// Output: progress on stderr; the records' log lines, a table and the compliance results on stdout;
// eval.json (written atomically). Exit status 0, 1 on an error, 3 when a compliance check fails.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/dist/launcher.h"
#include "core/main_error.h"
#include "eval/golf_eval.h"

namespace {
const auto kProcessStart = std::chrono::steady_clock::now();  // the eval clock starts with the process
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"golf-eval: exact bits per byte of an artifact — plain, sliding window, score-first TTT — with compliance checks"};
  golf::eval::EvalOptions a;
  a.start = kProcessStart;
  a.repo_root = GOLF_SOURCE_DIR;
  app.add_option("artifact", a.artifact, "artifact written by golf-pack (.golf)")->required()->check(CLI::ExistingFile);
  app.add_option("--out", a.out, "results JSON (default: eval.json beside the artifact)");
  app.add_flag("--ttt", a.ttt, "score-first test-time training (also TTT_ENABLED=1); TTT_MODE picks which");
  app.add_option("--ttt-mode", a.ttt_mode, "sgd (global SGD), lora (document LoRA) or phased (LoRA + global SGD phases); implies --ttt");
  app.add_flag("--no-plain", a.no_plain, "skip the plain (non-overlapping rows) evaluation");
  app.add_flag("--no-sliding", a.no_sliding, "skip the sliding-window evaluation");
  app.add_option("--stride", a.stride, "sliding-window stride (EVAL_STRIDE)");
  app.add_flag("--check-compliance", a.check, "run the compliance checks (default with --ttt)");
  app.add_flag("--no-compliance", a.no_check, "skip the compliance checks");
  app.add_option("--config", a.sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  app.add_option("--set", a.sources.overrides, "KEY=VALUE evaluation setting (repeatable)");
  app.add_option("--repo-root", a.repo_root, "source tree whose counted code is measured");
  app.add_option("--manifest", a.manifest, "counted-code manifest (default REPO_ROOT/artifact/code_manifest.txt)");
  app.add_flag_callback("--print-report-schema", [] {
        std::puts(golf::eval::eval_report_schema().dump(2).c_str());
        throw CLI::Success();  // before the required artifact is checked
      }, "print every key eval.json can hold (an example report, for scripts) and exit");
  golf::dist::LaunchOptions launch;
  golf::dist::add_launch_options(app, launch);
  CLI11_PARSE(app, argc, argv);
  try {
    a.sources.environment = golf::current_environment();
    if (golf::dist::should_launch(launch)) return golf::dist::launch(launch, argc, argv);
    const golf::eval::EvalReport report = golf::eval::run_eval(a);
    if (!report.main_rank) return 0;  // rank 0 reports for all
    std::fputs(golf::eval::summary_text(report).c_str(), stdout);
    golf::write_file_atomic(report.out, report.to_json().dump(2) + "\n");
    std::printf("wrote %s\n", report.out.c_str());
    if (!report.all_passed()) {
      std::fprintf(stderr, "golf-eval: a compliance check FAILED (see above)\n");
      return 3;
    }
    return 0;
  } catch (...) {
    return golf::main_error("golf-eval");  // core/main_error.h
  }
}
