#!/usr/bin/env bash
# scripts/gpu/check.sh — the GPU kit: one command that proves and measures golf's CUDA path.
#
#   scripts/gpu/check.sh [--cpu] [--out DIR] [--report FILE.json] [--budget SECONDS] [--bundle DIR]
#
# Runs from the repository root of a machine that has .gpubundle/ (scripts/gpu/bundle.sh) and a
# Python with torch 2.11 — on the GPU machine /opt/torch/.venv (GOLF_TORCH_VENV overrides). Every
# row runs in its own subshell with its own time limit, so a failure, an OOM or a hang is reported
# in its row and the rest still runs; rows that would start after the budget (default 400 s on the
# GPU) are SKIPPED. The table is printed last; the report goes to --report (default
# OUT/gpu-report.json, with gpu-report.md beside it), where OUT is --out, else $OUT (the device
# tool's result folder), else a fresh temporary folder. OUT also gets artifact.golf (packed from
# the timed run) and logs.tar.xz (every row's log). Exit status 0 when no row is FAIL, OOM or
# TIMEOUT, else 1.
#
# --cpu: the same flow on a CPU machine (CI: tests/scripts/tests.cmake): CUDA rows SKIP, and a
# tiny model (2 × 64, 2,048-token batches of 128-token rows) stands in for the record
# configuration; nothing reads the build folder.
#
# Rows (docs/gpu/README.md says what each means): env.* (GPU, torch, binaries load, SDPA backend),
# the GPU test cases (fused softcap CE kernel, GPU tensor save, GPTQ in ATen, bf16 model vs fp32
# twin, the distributed step through a process group of one), golf-train speed and memory at the
# record configuration (recurrence off / on / on with 2 micro-batches if on runs out of memory, and
# the issue-13 fast-path switches: FASTPATHS below), golf-pack (GPTQ on CUDA), golf-eval (sliding
# window + TTT tokens/s, compliance), the PyTorch twin eager and compiled (golf ÷ twin).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CPU=0
OUT_DIR="${OUT:-}"
REPORT=""
BUDGET=""
BUNDLE="$ROOT/.gpubundle"
while (($#)); do
  case "$1" in
    --cpu) CPU=1 ;;
    --out) OUT_DIR="$2"; shift ;;
    --report) REPORT="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    --bundle) BUNDLE="$2"; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
BUDGET="${BUDGET:-$((CPU ? 900 : 400))}"
MODE=$([ $CPU = 1 ] && echo cpu || echo gpu)
T0=$SECONDS
T_START=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/golf-gpukit.XXXXXX")"
[ -n "$OUT_DIR" ] || OUT_DIR="$WORK/out"
mkdir -p "$OUT_DIR" "$WORK"/{rows,logs,runs}
REPORT="${REPORT:-$OUT_DIR/gpu-report.json}"
say() { printf '[check %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

# ---- environment: torch from the GPU machine's venv, our libraries from the bundle -------------
TORCH_VENV="${GOLF_TORCH_VENV:-/opt/torch/.venv}"
PY="$TORCH_VENV/bin/python3"
[ -x "$PY" ] || PY="$TORCH_VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "check.sh: no python in $TORCH_VENV (set GOLF_TORCH_VENV)" >&2
  exit 2
fi
if [ ! -f "$BUNDLE/manifest.json" ]; then
  echo "check.sh: no bundle at $BUNDLE (run scripts/gpu/bundle.sh on a build machine first)" >&2
  exit 2
fi
REPORT_PY=("$PY" "$ROOT/scripts/gpu/report.py")
SITE="$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)"
export LD_LIBRARY_PATH="$BUNDLE/lib:$SITE/torch/lib:$SITE/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN="$BUNDLE/bin"
export PATH="$BIN:$PATH"  # the bundle's zpaq, the counted code's compressor (golf-pack, golf-eval)
TESTS="$BUNDLE/tests"
DATASETS="$BUNDLE/data/datasets"
TOKENIZER="$BUNDLE/data/tokenizer/fineweb_8192_bpe.model"
# The test binaries' paths (tests/test_util.h): nothing from the build machine.
export GOLF_PYTHON="$PY" GOLF_SOURCE_DIR="$ROOT" GOLF_REFERENCE_DIR="$ROOT/tests/reference" \
  GOLF_TWIN_DIR="$BUNDLE/twin" GOLF_SHARED_DIR="$BUNDLE/shared-absent" GOLF_DATA_DIR="$BUNDLE/data" \
  GOLF_TOKENIZER_DIR="$BUNDLE/data/tokenizer" GOLF_TRAIN_BIN="$BIN/golf-train" GOLF_PACK_BIN="$BIN/golf-pack" \
  GOLF_EVAL_BIN="$BIN/golf-eval" GOLF_DATA_BIN="$BIN/golf-data"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$((CPU ? 1 : 8))}"
if ((CPU)); then
  export CUDA_VISIBLE_DEVICES="" DEVICE=cpu
fi

# ---- configurations ---------------------------------------------------------------------------
# Record configuration (GPU): 11 × 512, one micro-batch of 98,304 tokens, segments of ≤ 2048 cut
# at every BOS (the packing loader, DOC_MASK=1), step-based schedule, one rolled-back warm-up step
# per recurrence mode. Validation and calibration are kept small: they are not timed.
COMMON=(DATA_PATH="$DATASETS" TOKENIZER_PATH="$TOKENIZER" OUTPUT_DIR="$WORK/runs" MAX_WALLCLOCK_SECONDS=0
  WARMUP_STEPS=1 GRAD_ACCUM_STEPS=1 VAL_LOSS_EVERY=0 CHECKPOINT_EVERY=0 TRAIN_LOG_EVERY=1
  GPTQ_CALIBRATION_BATCHES=2 SEED=1337 GOLF_PROFILE_STEPS=1
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True)
if ((CPU)); then
  # A tiny model (the twin bench's --tiny) and batch: the same flow in about a minute.
  MODEL=(NUM_LAYERS=2 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 ROPE_DIMS=8 XSA_LAST_N=2 PARALLEL_START_LAYER=1
    LOOP_START=0 LOOP_END=0 NUM_LOOPS=1)
  BATCH=(TRAIN_SEQ_LEN=128 TRAIN_BATCH_TOKENS=2048 ITERATIONS=4 VAL_MAX_TOKENS=4096 VAL_BATCH_TOKENS=2048)
  EVAL=(EVAL_SEQ_LEN=128 EVAL_STRIDE=32 EVAL_BATCH_SEQS=8 TTT_CHUNK_TOKENS=1024 TTT_EPOCHS=1 VAL_MAX_TOKENS=4096)
  TWIN=(--tiny --device cpu --tokens 2048 --seq 128 --steps 2 --warmup 1)
  TWIN_COMPILE_BACKEND=eager  # dynamo's tracing without inductor's C++ compile: CI time
else
  MODEL=()
  BATCH=(TRAIN_SEQ_LEN=2048 TRAIN_BATCH_TOKENS=98304 ITERATIONS=14 VAL_MAX_TOKENS=131072 VAL_BATCH_TOKENS=65536)
  EVAL=(VAL_MAX_TOKENS=1048576)  # the records' evaluation settings (2048 / 64, TTT 32,768-token chunks)
  TWIN=(--device cuda --tokens 98304 --seq 2048 --steps 6 --warmup 2)
  TWIN_COMPILE_BACKEND=inductor
fi

# Issue 13 (CUDA speed) fast paths: golf-train rows at the record configuration with recurrence off,
# beside train.noloop (the defaults: every fast path on). fastpath.plain turns every switch to its
# plain reference at once and runs right after the training rows; each FASTPATHS entry
# "name|SETTING ..." changes one switch from the defaults and runs after the twin rows, as long as
# the budget lasts (GPU only). A row whose switch golf-train does not know (issue 13 not merged
# into this build) is SKIPPED, so the list can name switches before they land.
FASTPATH_PLAIN="GOLF_ATTN=sdpa GOLF_FUSED_OPS=0 GOLF_BANK_UNBIND=0 GOLF_FOREACH_OPTIM=0 GOLF_NO_SYNC=0 GOLF_FUSED_QK=0
  GOLF_FUSED_MIX=0 GOLF_CUDA_GRAPHS=0 GOLF_CLOCK_SYNC_EVERY=1"
FASTPATHS=(
  "attn_sdpa|GOLF_ATTN=sdpa"             # blocked, masked SDPA (the reference) instead of varlen flash
  "attn_cudnn|GOLF_ATTN=cudnn"           # cuDNN ragged attention instead of varlen flash
  "fused_ops_off|GOLF_FUSED_OPS=0"       # unfused RMSNorm and LeakyReLU²
  "bank_unbind_off|GOLF_BANK_UNBIND=0"   # select + cast of a bank matrix at every use
  "foreach_optim_off|GOLF_FOREACH_OPTIM=0"  # per-tensor clip / EMA / AdamW with host syncs
  "no_sync_off|GOLF_NO_SYNC=0"           # loss .item() and blocking batch copies every step
  "fused_qk_on|GOLF_FUSED_QK=1"          # QK-norm + partial RoPE + q gain as one kernel (default off)
  "fused_mix_on|GOLF_FUSED_MIX=1"        # residual/lane/skip mixes, XSA + gates, SmearGate as kernels (default off)
  "fused_all_on|GOLF_FUSED_QK=1 GOLF_FUSED_MIX=1"  # both custom-kernel groups together
  "cuda_graphs_on|GOLF_CUDA_GRAPHS=1"    # the micro-step replayed from a CUDA graph (default off)
)

# ---- rows -------------------------------------------------------------------------------------
# A row function runs in a subshell with ROW, ROW_LOG and ROW_DEADLINE set; it wraps every command
# in `tmo` (the row's time left) and ends by calling `result STATUS SUMMARY [KEY=VALUE...]`.
tmo() { local left=$((ROW_DEADLINE - SECONDS)); ((left > 0)) || return 124; timeout -k 5 "$left" "$@"; }
result() { result_as "$ROW" "$@"; }
result_as() { "${REPORT_PY[@]}" row "$WORK/rows" "$@"; }
row_status() { "${REPORT_PY[@]}" json-get "$(ls "$WORK"/rows/*-"$1".json 2>/dev/null | head -1)" status 2>/dev/null; }
row_field() { "${REPORT_PY[@]}" json-get "$(ls "$WORK"/rows/*-"$1".json 2>/dev/null | head -1)" "$2" 2>/dev/null; }
timed_out() { (($1 == 124 || $1 == 137)); }

run_row() {  # NAME GPU_LIMIT CPU_LIMIT FUNCTION [ARGS...]
  local name=$1 limit=$2 fn=$4 t=$SECONDS rc
  ((CPU)) && limit=$3
  shift 4
  local left=$((BUDGET - (SECONDS - T0)))
  if ((left < 20)); then
    result_as "$name" SKIP "out of time (${left}s of the ${BUDGET}s budget left)"
    say "$name SKIP (out of time)"
    return
  fi
  ((limit > left)) && limit=$left
  # Test hook (tests/scripts/test_gpu_kit.py): this row crashes, to prove the others still run.
  [ "${GOLF_CHECK_CRASH_ROW:-}" = "$name" ] && fn=crash_row
  ROW=$name ROW_LOG="$WORK/logs/$name.log" ROW_DEADLINE=$((SECONDS + limit))
  ("$fn" "$@") >"$ROW_LOG" 2>&1
  rc=$?
  if ! ls "$WORK"/rows/*-"$name".json >/dev/null 2>&1; then
    if timed_out $rc; then
      result_as "$name" TIMEOUT "no result within ${limit}s (logs/$name.log)"
    else
      result_as "$name" FAIL "the row ended without a result (exit $rc; logs/$name.log)"
    fi
  fi
  say "$name $(row_status "$name") ($((SECONDS - t))s)"
  # The report so far, so that a command cut off by the device tool's limit still leaves one.
  "${REPORT_PY[@]}" finish "$WORK/rows" --json "$REPORT" --meta "partial=true" --meta "mode=$MODE" >/dev/null 2>&1
}

crash_row() { echo "crashing on purpose (GOLF_CHECK_CRASH_ROW)"; exit 3; }

# One gtest case (or filter) from the bundle; the status follows gtest's verdict (SKIP without a GPU).
gtest_row() {  # BINARY FILTER
  tmo "$TESTS/$1" --gtest_filter="$2" --gtest_color=no
  local rc=$?
  timed_out $rc && { result TIMEOUT "$1 $2 timed out"; return; }
  local verdict status counts
  verdict="$("${REPORT_PY[@]}" gtest "$ROW_LOG")"
  status="$(head -1 <<<"$verdict")"
  counts="$(tail -1 <<<"$verdict")"
  if ((rc != 0)) && [ "$status" != FAIL ]; then status=FAIL counts="$counts exit=$rc"; fi
  local msgs
  msgs="$(grep -E '^\[twin-cuda\]|GTEST_SKIP|Skipped$|no CUDA device' "$ROW_LOG" | head -4 | tr '\n' ' ' | cut -c1-200)"
  result "$status" "$1 $2 ${msgs}" $counts
}

row_env_gpu() {
  ((CPU)) && { result SKIP "cpu mode"; return; }
  local q
  q="$(tmo nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)" ||
    { result FAIL "nvidia-smi failed"; return; }
  result OK "$q" "gpu=$(cut -d, -f1 <<<"$q" | xargs | tr ' ' '_')" "driver=$(cut -d, -f2 <<<"$q" | xargs)"
}

row_env_torch() {
  local line want
  line="$(tmo "$PY" -c 'import torch; c = torch.cuda.is_available()
print(torch.__version__, torch.version.git_version, torch.version.cuda, int(c), torch.cuda.get_device_name(0).replace(" ", "_") if c else "none")')" ||
    { result FAIL "$PY cannot import torch"; return; }
  read -r version git cuda avail name <<<"$line"
  want="$("${REPORT_PY[@]}" json-get "$BUNDLE/manifest.json" torch_git)"
  local kv=("torch=$version" "torch_git=$git" "cuda=$cuda" "device=$name")
  if [ "$git" != "$want" ]; then
    result FAIL "torch $version git $git, but the bundle was built against git $want (C++ ABI risk)" "${kv[@]}"
  elif ((!CPU && !avail)); then
    result FAIL "torch $version sees no CUDA device" "${kv[@]}"
  else
    result PASS "torch $version git ${git:0:12} cuda $cuda device $name (same build as the bundle)" "${kv[@]}"
  fi
}

row_env_binaries() {
  local missing="" n=0 f
  for f in "$BIN"/* "$TESTS"/*; do
    n=$((n + 1))
    ldd "$f" | grep -q 'not found' && missing+="$(basename "$f"): $(ldd "$f" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
  done
  for f in "$BIN"/golf-*; do
    tmo "$f" --help >/dev/null 2>&1 || missing+="$(basename "$f") --help fails; "
  done
  if [ -n "$missing" ]; then result FAIL "$missing"; else result PASS "all $n binaries load (no missing library), golf-* --help runs" "binaries=$n"; fi
}

# Which SDPA backend golf's blocked attention call gets (docs/reference/gpu-readiness.md §2.2: expect 3, cuDNN).
row_env_sdpa() {
  ((CPU)) && { result SKIP "cpu mode"; return; }
  local c
  c="$(tmo "$PY" -c 'import torch
q = torch.randn(48, 8, 2048, 64, device="cuda", dtype=torch.bfloat16); k = torch.randn(48, 8, 4096, 64, device="cuda", dtype=torch.bfloat16)
m = torch.ones(48, 1, 2048, 4096, device="cuda", dtype=torch.bool)
print(torch._fused_sdp_choice(q, k, k, m), torch._fused_sdp_choice(q, q, q, None, is_causal=True))')" ||
    { result FAIL "torch._fused_sdp_choice failed"; return; }
  local names=(math flash efficient cudnn overrideable) a b
  read -r a b <<<"$c"
  result OK "blocked masked attention → ${names[$a]:-$a}; dense causal → ${names[$b]:-$b}" "masked_backend=${names[$a]:-$a}" "causal_backend=${names[$b]:-$b}"
}

# golf-train at the configuration above plus the given settings; figures from its log.
train_row() {  # RUN_ID SETTINGS...
  local run=$1
  shift
  export "${COMMON[@]}" "${MODEL[@]}" "${BATCH[@]}" "$@" RUN_ID="$run"  # (the row's own subshell)
  tmo "$BIN/golf-train"
  local rc=$? log="$WORK/runs/$run/train.log" figs=()
  [ -f "$log" ] && mapfile -t figs < <("${REPORT_PY[@]}" train-log "$log")
  if grep -qiE 'out of memory|CUDA error: out of memory|OutOfMemory' "$ROW_LOG"; then
    result OOM "golf-train $* ran out of GPU memory" "${figs[@]}"
  elif timed_out $rc; then
    result TIMEOUT "golf-train $* timed out" "${figs[@]}"
  elif ((rc != 0)); then
    result FAIL "golf-train $* exited $rc: $(grep -m1 -i error "$ROW_LOG" | cut -c1-160)" "${figs[@]}"
  else
    result OK "golf-train $* (steady state from step 2)" "${figs[@]}" "run=$run"
  fi
}

row_train_loop_accum2() {
  local s
  s="$(row_status train.loop)"
  [ "$s" = OOM ] || { result SKIP "only when train.loop runs out of memory (it was $s)"; return; }
  train_row loop_accum2 ENABLE_LOOPING_AT=0 GRAD_ACCUM_STEPS=2
}

# golf-train with fast-path switches set (see FASTPATHS), SKIPPED when the binary lacks a switch.
fastpath_row() {  # RUN_ID GPU_ONLY(0|1) SETTINGS...
  local run=$1 gpu_only=$2 kv
  shift 2
  ((CPU && gpu_only)) && { result SKIP "cpu mode (single-switch speed rows run on the GPU only)"; return; }
  for kv in "$@"; do
    grep -qa "${kv%%=*}" "$BIN/golf-train" || { result SKIP "golf-train has no ${kv%%=*} switch (issue 13 not in this build)"; return; }
  done
  train_row "$run" NUM_LOOPS=0 "$@"
}

# The timed run's weights through golf-pack (GPTQ on CUDA when there is a GPU).
row_pack() {
  local run=""
  for r in noloop loop loop_accum2; do
    [ -f "$WORK/runs/$r/ema_model.safetensors" ] && [ -f "$WORK/runs/$r/hessians.safetensors" ] && { run=$r; break; }
  done
  [ -n "$run" ] || { result FAIL "no finished golf-train run to pack"; return; }
  tmo "$BIN/golf-pack" "$WORK/runs/$run" --out "$WORK/artifact.golf" --repo-root "$ROOT"
  local rc=$?
  timed_out $rc && { result TIMEOUT "golf-pack timed out"; return; }
  ((rc == 0)) || { result FAIL "golf-pack exited $rc: $(grep -m1 -iE 'error|over the' "$ROW_LOG" | cut -c1-160)"; return; }
  cp "$WORK/artifact.golf" "$OUT_DIR/artifact.golf"
  local q b t
  read -r q b t < <("${REPORT_PY[@]}" json-get "$WORK/artifact.golf.json" quantize_seconds bytes_model bytes_total | tr '\n' ' ')
  q="$(printf '%.2f' "$q")"
  result OK "golf-pack of run $run → artifact.golf (GPTQ ${q}s)" "quantize_seconds=$q" "bytes_model=$b" "bytes_total=$t" "run=$run"
}

# golf-eval: sliding window and score-first TTT on the validation tokens, with the compliance checks.
row_eval() {
  [ -f "$WORK/artifact.golf" ] || { result FAIL "no artifact (see the pack row)"; return; }
  export DATA_PATH="$DATASETS" TOKENIZER_PATH="$TOKENIZER" "${EVAL[@]}"
  tmo "$BIN/golf-eval" "$WORK/artifact.golf" --ttt --no-plain --out "$WORK/eval.json" --repo-root "$ROOT"
  local rc=$? figs=()
  timed_out $rc && { result TIMEOUT "golf-eval timed out"; return; }
  [ -f "$WORK/eval.json" ] || { result FAIL "golf-eval exited $rc without eval.json: $(grep -m1 -i error "$ROW_LOG" | cut -c1-160)"; return; }
  mapfile -t figs < <("${REPORT_PY[@]}" eval-json "$WORK/eval.json")
  local failed
  failed="$(printf '%s\n' "${figs[@]}" | sed -n 's/^compliance_failed=//p')"
  if [ "$failed" = none ] && ((rc == 0)); then
    result_as eval.compliance PASS "every golf-eval compliance check passed ($(printf '%s\n' "${figs[@]}" | sed -n 's/^device=//p'))"
  else
    result_as eval.compliance FAIL "golf-eval exit $rc; failed checks: $failed"
  fi
  result OK "golf-eval --ttt --no-plain: sliding window and TTT ($(printf '%s\n' "${EVAL[@]}" | grep VAL_MAX_TOKENS))" "${figs[@]}"
}

row_twin_check() {
  tmo "$PY" "$ROOT/scripts/gpu/twin_bench.py" --check --json "$WORK/twin-check.json"
  local rc=$?
  timed_out $rc && { result TIMEOUT "twin_bench --check timed out"; return; }
  ((rc == 0)) && result PASS "the twin bench's SDPA attention equals the twin's own (logits 1e-5, grads 1e-4)" ||
    result FAIL "twin_bench --check exit $rc"
}

twin_row() {  # MODE
  local golf
  golf="$(row_field train.noloop tokens_per_s)"
  tmo "$PY" "$ROOT/scripts/gpu/twin_bench.py" --data "$DATASETS/fineweb_train_000000.bin" "${TWIN[@]}" \
    --mode "$1" --compile-backend "$TWIN_COMPILE_BACKEND" --json "$WORK/twin-$1.json"
  local rc=$?
  if grep -qiE 'out of memory|OutOfMemory' "$ROW_LOG"; then result OOM "twin $1 ran out of GPU memory"; return; fi
  timed_out $rc && { result TIMEOUT "twin $1 timed out"; return; }
  ((rc == 0)) || { result FAIL "twin_bench --mode $1 exit $rc: $(grep -m1 -iE 'error' "$ROW_LOG" | cut -c1-160)"; return; }
  local ms tps first peak
  read -r ms tps first peak < <("${REPORT_PY[@]}" json-get "$WORK/twin-$1.json" ms_per_step tokens_per_s first_step_s peak_allocated_mib | tr '\n' ' ')
  local ratio=""
  [ -n "$golf" ] && ratio="$(awk -v g="$golf" -v t="$tps" 'BEGIN { if (t > 0) printf "%.3f", g / t }')"
  result OK "PyTorch twin, $1$([ "$1" = compile ] && echo " ($TWIN_COMPILE_BACKEND)"), recurrence off; ratio = golf ÷ twin tokens/s" \
    "ms_per_step=$(printf '%.2f' "$ms")" "tokens_per_s=$(printf '%.0f' "$tps")" "first_step_s=$(printf '%.1f' "$first")" \
    ${peak:+"peak_allocated_mib=$peak"} ${ratio:+"ratio_golf_over_twin=$ratio"}
}

# ---- the run ----------------------------------------------------------------------------------
MEM_PID=""
if ((!CPU)) && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 500 >"$WORK/logs/nvidia-smi.csv" 2>&1 &
  MEM_PID=$!
fi
say "mode $MODE, budget ${BUDGET}s, bundle $BUNDLE, torch from $TORCH_VENV"
T0=$SECONDS  # the budget counts from the first row (the set-up above imports torch once)

run_row env.gpu 30 30 row_env_gpu
run_row env.torch 60 60 row_env_torch
run_row env.binaries 60 60 row_env_binaries
run_row env.sdpa_backend 60 60 row_env_sdpa
run_row kernel.softcap_ce 90 120 gtest_row model_tests 'SoftcapCe.FusedKernelMatchesReferenceOnGpu'
run_row kernel.qk_norm_rope 60 120 gtest_row model_tests 'QkNormRope.CudaKernelsEqualTheCpuOpOnGpu'
# residual_mix / xsa_gate / smear kernels vs their CPU op, fp32 and bf16 (tolerances in the test:
# estimates, 1e-5 fp32, 8e-3 / 1.6e-2 bf16, until this row has run once).
run_row kernel.mix 60 120 gtest_row model_tests 'MixOps.CudaKernelsEqualTheCpuOpOnGpu'
run_row graph.replay_equals_eager 90 120 gtest_row train_torch_tests 'GraphStep.AReplayedStepEqualsAnEagerStepOnGpu'
run_row sync.train_step 60 120 gtest_row train_torch_tests 'FastPathsStep.TheTrainingStepDoesNotSyncOnGpu'
run_row optim.device_scalars 60 120 gtest_row train_torch_tests 'OptimizerFastPath.MuonWithDeviceScalarsEqualsTheHostScalarsOnGpu'
# golf-eval's scoring forward + TTT's loss backward and fused SGD (device lr) under sync debug "error".
run_row sync.eval_ttt_step 60 120 gtest_row scoring_tests 'Protocols.TheEvalForwardAndTttStepsDoNotSyncOnGpu'
run_row tensor_io.gpu_save 90 120 gtest_row core_torch_tests 'TensorIo.SavesGpuTensorsFromTheDevice'
run_row gptq.aten_cuda 90 120 gtest_row quant_aten_tests 'GptqAten.EqualsTheEigenImplementationOnCuda'
run_row model.bf16_cuda_vs_twin 90 120 gtest_row train_torch_tests 'Records/TwinOnCuda.*'
run_row dist.gloo_group_of_one 90 120 gtest_row dist_step_tests 'Devices/GroupOfOne.*/0'
run_row dist.nccl_group_of_one 90 120 gtest_row dist_step_tests 'Devices/GroupOfOne.*/1'
run_row train.noloop 120 300 train_row noloop NUM_LOOPS=0
run_row train.loop 120 300 train_row loop ENABLE_LOOPING_AT=0
run_row train.loop_accum2 120 300 row_train_loop_accum2
# shellcheck disable=SC2086  # the settings are words
run_row fastpath.plain 120 300 fastpath_row fp_plain 0 $FASTPATH_PLAIN
run_row pack 120 300 row_pack
run_row eval.sliding_ttt 180 300 row_eval
run_row twin.sdpa_check 60 120 row_twin_check
run_row twin.eager 90 300 twin_row eager
run_row twin.compile 240 300 twin_row compile
for fp in "${FASTPATHS[@]}"; do
  IFS='|' read -r fp_name fp_settings <<<"$fp"
  # shellcheck disable=SC2086
  run_row "fastpath.$fp_name" 90 30 fastpath_row "fp_$fp_name" 1 $fp_settings
done

[ -n "$MEM_PID" ] && kill "$MEM_PID" 2>/dev/null
card="$(row_field env.gpu gpu)"
commit="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || "${REPORT_PY[@]}" json-get "$BUNDLE/manifest.json" commit | cut -c1-12)"
tar -C "$WORK" -cJf "$OUT_DIR/logs.tar.xz" logs rows 2>/dev/null
"${REPORT_PY[@]}" finish "$WORK/rows" --json "$REPORT" --md "${REPORT%.json}.md" \
  --meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta "mode=$MODE" \
  --meta "card=${card:-none}" --meta "commit=$commit" --meta "bundle_commit=$("${REPORT_PY[@]}" json-get "$BUNDLE/manifest.json" commit | cut -c1-12)" \
  --meta "torch=$(row_field env.torch torch)" --meta "wall_seconds=$((SECONDS - T_START))" --meta "budget_seconds=$BUDGET" \
  --meta "out=$OUT_DIR"
bad=$(grep -lE '"status": "(FAIL|OOM|TIMEOUT)"' "$WORK"/rows/*.json 2>/dev/null | wc -l)
rm -rf "$WORK"
((bad == 0))
