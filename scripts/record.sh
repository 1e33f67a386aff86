#!/usr/bin/env bash
# scripts/record.sh — train, pack and evaluate one configuration for several seeds, then assemble
# the record folder (scripts/make_record.py).
#
#   scripts/record.sh CONFIG.json NAME [--seeds "42 1337 2025"] [--track track_10min_16mb]
#       [--set KEY=VALUE]... [--out-root records] [--runs-root runs] [--author A] [--github-id G]
#       [--what-changed TEXT] [--best FLOAT|RECORD_DIR] [--best-unit nats|bpb] [--hardware TEXT]
#       [--date YYYY-MM-DD] [--reuse] [--overwrite]
#
# Per seed S (run RUN_DIR = RUNS_ROOT/DATE_NAME_seedS):
#   golf-train --config CONFIG --set SEED=S --set RUN_ID=DATE_NAME_seedS --set OUTPUT_DIR=RUNS_ROOT [--set …]
#   golf-pack  RUN_DIR --val                                  (stdout → RUN_DIR/pack.log, stderr → pack.err)
#   golf-eval  RUN_DIR/final_model.golf --ttt --out RUN_DIR/eval.json --set …   (stdout → RUN_DIR/eval.log,
#              stderr → eval.err); the --set values are the run's DATA_PATH, TOKENIZER_PATH, DEVICE,
#              VAL_MAX_TOKENS, EVAL_*, TTT_* (except TTT_ENABLED; TTT_MODE=sgd|lora|phased picks the TTT), PHASED_TTT_*
#              and GLOBAL_TTT_* from RUN_DIR/config.json, then yours.
# A failed stage ends that seed only; the others still run, and make_record.py lists it as FAILED.
# Then: make_record.py --out OUT_ROOT/TRACK/DATE_NAME --seed-run S=RUN_DIR … (its exit status is ours:
# 0 all seeds ok, 3 record written with FAILED seeds, 2 bad input).
# --reuse: a run directory that already exists is kept and each stage whose output is there is skipped
# (to finish or re-assemble after an interruption); without it an existing run directory is an error.
# Binaries: GOLF_BUILD_DIR (default ROOT/build). Python: GOLF_PYTHON (default the pinned venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${GOLF_BUILD_DIR:-$ROOT/build}"
PYTHON="${GOLF_PYTHON:-${GOLF_CACHE:-$HOME/.cache/golf}/venv-torch-2.11.0/bin/python}"

die() { echo "record.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

[ $# -ge 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; } && { usage; exit 0; }
[ $# -ge 2 ] || { usage >&2; exit 2; }
CONFIG="$1"; NAME="$2"; shift 2
SEEDS="42 1337 2025"; TRACK="track_10min_16mb"; OUT_ROOT="records"; RUNS_ROOT="runs"
AUTHOR="$(git -C "$ROOT" config user.name 2>/dev/null || echo "${USER:-unknown}")"
GITHUB_ID="${GOLF_GITHUB_ID:-$AUTHOR}"; WHAT_CHANGED=""; DATE="$(date +%F)"; REUSE=0
SETS=(); EXTRA=()
while [ $# -gt 0 ]; do
  opt="$1"
  case "$opt" in
    --seeds|--track|--set|--out-root|--runs-root|--author|--github-id|--what-changed|--best|--best-unit|--hardware|--date)
      [ $# -ge 2 ] || die "$opt needs a value"; val="$2"; shift 2 ;;
    --reuse) REUSE=1; shift; continue ;;
    --overwrite) EXTRA+=(--overwrite); shift; continue ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $opt (see --help)" ;;
  esac
  case "$opt" in
    --seeds) SEEDS="$val" ;;
    --track) TRACK="$val" ;;
    --set)
      [[ "$val" == *=* ]] || die "--set $val: expected KEY=VALUE"
      case "${val%%=*}" in SEED|RUN_ID|OUTPUT_DIR) die "--set ${val%%=*} is set per seed by record.sh (use --seeds / --runs-root)" ;; esac
      SETS+=(--set "$val") ;;
    --out-root) OUT_ROOT="$val" ;;
    --runs-root) RUNS_ROOT="$val" ;;
    --author) AUTHOR="$val" ;;
    --github-id) GITHUB_ID="$val" ;;
    --what-changed) WHAT_CHANGED="$val" ;;
    --best) EXTRA+=(--best "$val") ;;
    --best-unit) EXTRA+=(--best-unit "$val") ;;
    --hardware) EXTRA+=(--hardware "$val") ;;
    --date) DATE="$val" ;;
  esac
done

[ -f "$CONFIG" ] || die "config $CONFIG does not exist"
[[ "$NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "NAME '$NAME' may only use letters, digits, '.', '_' and '-'"
read -r -a SEED_LIST <<<"$SEEDS"
[ ${#SEED_LIST[@]} -ge 1 ] || die "--seeds is empty"
for s in "${SEED_LIST[@]}"; do [[ "$s" =~ ^[0-9]+$ ]] || die "--seeds: '$s' is not a non-negative integer"; done
[ -x "$PYTHON" ] || die "python $PYTHON not found (set GOLF_PYTHON)"
for tool in train/golf-train pack/golf-pack eval/golf-eval; do
  [ -x "$BUILD_DIR/$tool" ] || die "$BUILD_DIR/$tool not built (GOLF_BUILD_DIR=$BUILD_DIR)"
done
[ -n "$WHAT_CHANGED" ] || WHAT_CHANGED="Configuration $(basename "$CONFIG")."
RECORD="$OUT_ROOT/$TRACK/${DATE}_$NAME"
[ -e "$RECORD" ] && [[ " ${EXTRA[*]-} " != *" --overwrite "* ]] && die "$RECORD already exists (--overwrite replaces it)"
if [ $REUSE = 0 ]; then
  for s in "${SEED_LIST[@]}"; do
    [ -e "$RUNS_ROOT/${DATE}_${NAME}_seed$s" ] && die "$RUNS_ROOT/${DATE}_${NAME}_seed$s exists: --reuse to continue it, or another NAME"
  done
fi

# The run's evaluation settings as --set arguments for golf-eval.
eval_sets() {
  "$PYTHON" - "$1/config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
for k, v in cfg.items():
    if k in ("DATA_PATH", "TOKENIZER_PATH", "DEVICE", "VAL_MAX_TOKENS") or \
       (k.startswith(("EVAL_", "TTT_", "PHASED_TTT_", "GLOBAL_TTT_")) and k != "TTT_ENABLED"):
        print(f"{k}={v}")
PY
}

SEED_RUNS=(); FAILED=()
t_all=$SECONDS
for s in "${SEED_LIST[@]}"; do
  RUN_ID="${DATE}_${NAME}_seed$s"; RUN_DIR="$RUNS_ROOT/$RUN_ID"
  SEED_RUNS+=(--seed-run "$s=$RUN_DIR")
  echo "== seed $s → $RUN_DIR"
  t0=$SECONDS
  if [ -f "$RUN_DIR/ema_model.safetensors" ] && [ -f "$RUN_DIR/hessians.safetensors" ]; then
    echo "   train: done already (--reuse)"
  elif [ -d "$RUN_DIR" ]; then
    "$BUILD_DIR/train/golf-train" --resume "$RUN_DIR" || { echo "   seed $s: golf-train --resume failed" >&2; FAILED+=("$s:train"); continue; }
  else
    "$BUILD_DIR/train/golf-train" --config "$CONFIG" --set "SEED=$s" --set "RUN_ID=$RUN_ID" --set "OUTPUT_DIR=$RUNS_ROOT" \
      ${SETS[@]+"${SETS[@]}"} || { echo "   seed $s: golf-train failed" >&2; FAILED+=("$s:train"); continue; }
  fi
  if [ -f "$RUN_DIR/final_model.golf.json" ]; then
    echo "   pack: done already (--reuse)"
  elif ! "$BUILD_DIR/pack/golf-pack" "$RUN_DIR" --val >"$RUN_DIR/pack.log" 2>"$RUN_DIR/pack.err"; then
    echo "   seed $s: golf-pack failed (see $RUN_DIR/pack.log, pack.err):" >&2; tail -n 5 "$RUN_DIR/pack.err" >&2
    FAILED+=("$s:pack"); continue
  fi
  if [ -f "$RUN_DIR/eval.json" ]; then
    echo "   eval: done already (--reuse)"
  else
    mapfile -t ESETS < <(eval_sets "$RUN_DIR")
    EARGS=(); for kv in "${ESETS[@]}"; do EARGS+=(--set "$kv"); done
    if ! "$BUILD_DIR/eval/golf-eval" "$RUN_DIR/final_model.golf" --ttt --out "$RUN_DIR/eval.json" \
        ${EARGS[@]+"${EARGS[@]}"} ${SETS[@]+"${SETS[@]}"} >"$RUN_DIR/eval.log" 2>"$RUN_DIR/eval.err"; then
      echo "   seed $s: golf-eval failed (see $RUN_DIR/eval.log, eval.err):" >&2; tail -n 5 "$RUN_DIR/eval.err" >&2
      FAILED+=("$s:eval"); continue
    fi
  fi
  echo "   seed $s done in $((SECONDS - t0)) s"
done

echo "== record → $RECORD"
rc=0
"$PYTHON" "$ROOT/scripts/make_record.py" --out "$RECORD" --name "$NAME" --author "$AUTHOR" --github-id "$GITHUB_ID" \
  --track "$TRACK" --config "$CONFIG" --what-changed "$WHAT_CHANGED" --date "$DATE" \
  "${SEED_RUNS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} || rc=$?
echo
echo "runs:    $RUNS_ROOT/${DATE}_${NAME}_seed{$(IFS=,; echo "${SEED_LIST[*]}")}"
[ $rc -ne 2 ] && echo "record:  $RECORD (README.md, submission.json, logs, plots)"
[ ${#FAILED[@]} -gt 0 ] && echo "failed:  ${FAILED[*]} (seed:stage)"
echo "time:    $((SECONDS - t_all)) s"
exit $rc
