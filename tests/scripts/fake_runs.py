"""tests/scripts/fake_runs.py — realistic golf run directories for the script tests.

make_run(path, seed, final_bpb) writes what golf-train, golf-pack --val and golf-eval --ttt leave
in a run directory (same files, keys and shapes as train/trainer.cpp, pack/main.cpp and the
golf-eval contract), with numbers derived from final_bpb. Tests then break single files.
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The start of every stand-in tool script (golf-train/pack/eval stand-ins for record.py and
# ablate.py tests): logs its argv to $FAKE_CALLS and parses --set KEY=VALUE pairs.
STAND_IN_PREAMBLE = f"""#!{sys.executable}
import json, os, sys
sys.path.insert(0, {HERE!r})
import fake_runs
if sys.argv[1:] == ["--print-config", "--stage", "eval", "--json"]:  # scripts/golf_pipeline.py asks once; not logged
    print(json.dumps(fake_runs.print_config_stage_eval()))
    sys.exit(0)
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
def sets(argv):
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--set")
"""

# golf-train's eval stage (core/config.cpp's stage table), as `golf-train --print-config --stage eval
# --json` prints it; tests/scripts/test_golf_pipeline.py checks it against the real binary when built.
EVAL_STAGE = ("SEED", "DATA_PATH", "TOKENIZER_PATH", "DEVICE", "SMAT_ABLATION", "VAL_MAX_TOKENS",
              "DIST_TIMEOUT_SECONDS", "EVAL_SEQ_LEN", "EVAL_STRIDE", "EVAL_BATCH_SEQS", "TTT_ENABLED", "TTT_LR",
              "TTT_MOMENTUM", "TTT_EPOCHS", "TTT_CHUNK_TOKENS", "TTT_GRAD_CLIP", "TTT_FREEZE_BLOCKS",
              "EVAL_TIME_LIMIT", "TTT_BATCH_SEQS", "TTT_MODE", "TTT_LORA_RANK", "TTT_LORA_ALPHA", "TTT_LORA_LR",
              "TTT_CHUNK_SIZE", "TTT_EVAL_SEQ_LEN", "TTT_BATCH_SIZE", "TTT_GRAD_STEPS", "TTT_WEIGHT_DECAY",
              "TTT_BETA1", "TTT_BETA2", "TTT_K_LORA", "TTT_O_LORA", "TTT_MLP_LORA", "TTT_WARM_START_A",
              "PHASED_TTT_PREFIX_DOCS", "PHASED_TTT_NUM_PHASES", "GLOBAL_TTT_LR", "GLOBAL_TTT_MOMENTUM",
              "GLOBAL_TTT_CHUNK_TOKENS", "GLOBAL_TTT_EPOCHS")


def print_config_stage_eval():
    """What the stand-in golf-train prints for --print-config --stage eval --json (values are not read)."""
    return {k: {"value": None, "stages": ["eval"], "help": ""} for k in EVAL_STAGE}


# nats per bpb = ln 2 · bytes/token; sp8192 on the official val split has 3.72663 bytes/token.
BYTES_PER_TOKEN = 3.72663
NATS_PER_BPB = math.log(2) * BYTES_PER_TOKEN
VAL_TOKENS = 40_540_160
VAL_BYTES = round(VAL_TOKENS * BYTES_PER_TOKEN)


def config(seed, run_id, **overrides):
    cfg = {"RUN_ID": run_id, "OUTPUT_DIR": "runs", "SEED": seed, "DATA_PATH": "./data/datasets/fineweb10B_sp8192",
           "TOKENIZER_PATH": "./data/tokenizers/fineweb_8192_bpe.model", "DEVICE": "auto", "VOCAB_SIZE": 8192,
           "NUM_LAYERS": 11, "MODEL_DIM": 512, "MATRIX_LR": 0.026, "ITERATIONS": 20000,
           "MAX_WALLCLOCK_SECONDS": 600.0, "EVAL_STRIDE": 64, "TTT_ENABLED": 0, "TTT_LR": 0.005,
           "VAL_MAX_TOKENS": 0, "TTT_MODE": "phased", "PHASED_TTT_NUM_PHASES": 3, "GLOBAL_TTT_LR": 0.001}
    cfg.update(overrides)
    return cfg


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def make_run(path, seed, final_bpb, steps=4500, step_ms=128.0, eval_seconds=480.0, compliance_ok=True, **cfg):
    os.makedirs(path)
    write_json(os.path.join(path, "config.json"), config(seed, os.path.basename(path), **cfg))
    log, metrics = [], []
    for step in range(0, steps + 1, 500):
        t_ms = step * step_ms
        loss = (final_bpb + 0.9 * math.exp(-step / 800) + 0.02) * NATS_PER_BPB
        if step > 0:
            log.append(f"step:{step}/20000 train_loss:{loss:.4f} train_time:{t_ms:.0f}ms step_avg:{step_ms:.2f}ms")
            metrics.append({"event": "train", "step": step, "train_loss": loss, "train_time_ms": t_ms,
                            "step_avg_ms": step_ms, "tokens_per_s": 786432 / step_ms * 1000, "lr_mul": 1.0,
                            "looping": step > 0.35 * steps})
        if step % 1500 == 0 or step == steps:
            bpb = final_bpb + 0.9 * math.exp(-step / 800) + 0.012
            metrics.append({"event": "val", "step": step, "val_loss": bpb * NATS_PER_BPB, "val_bpb": bpb,
                            "train_time_ms": t_ms, "eval_time_ms": 2100.0, "looping": step > 0.35 * steps})
    pre = final_bpb + 0.012
    metrics.append({"event": "post_ema", "step": steps, "val_loss": (pre - 0.002) * NATS_PER_BPB,
                    "val_bpb": pre - 0.002, "train_time_ms": steps * step_ms, "eval_time_ms": 2100.0, "looping": True})
    metrics.append({"event": "calibration", "batches": 64, "time_ms": 3500.0})
    log.append(f"stopping_early: step:{steps} train_time:{steps * step_ms:.0f}ms")
    with open(os.path.join(path, "train.log"), "w") as f:
        f.write("\n".join(log) + "\n")
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(m) + "\n" for m in metrics)

    bytes_model, bytes_code = 15_890_000 + seed % 1000, 21_234
    write_json(os.path.join(path, "final_model.golf.json"), {
        "artifact": os.path.join(path, "final_model.golf"), "bytes_model": bytes_model, "bytes_code": bytes_code,
        "bytes_total": bytes_model + bytes_code, "limit": 16_000_000, "code_files": 42, "quantize_seconds": 9.5,
        "tensors": [{"name": "blocks.attn.qkv", "group": "attn", "bits": 6, "clip_sigmas": 13.0, "params": 786432,
                     "error_gptq": 1e-4, "error_rtn": 2e-4, "dead_columns": 0, "rtn_fallback": False}],
        "pre_quant": {"val_loss": (pre - 0.002) * NATS_PER_BPB, "val_bpb": pre - 0.002},
        "quantized": {"val_loss": pre * NATS_PER_BPB, "val_bpb": pre}})

    def res(bpb, seconds, **extra):
        return {"val_loss": bpb * NATS_PER_BPB, "val_bpb": bpb, "tokens": VAL_TOKENS, "bytes": VAL_BYTES,
                "seconds": seconds, **extra}
    write_json(os.path.join(path, "eval.json"), {
        "artifact": os.path.join(path, "final_model.golf"), "bytes_model": bytes_model, "bytes_code": bytes_code,
        "bytes_total": bytes_model + bytes_code, "tokenizer": "./data/tokenizers/fineweb_8192_bpe.model",
        "val_files": ["./data/datasets/fineweb10B_sp8192/fineweb_val_000000.bin"], "train_data_read": False,
        "results": {"plain": res(pre + 0.001, 20.0), "sliding": res(final_bpb + 0.0025, 110.0, stride=64, windows=633440),
                    "ttt": res(final_bpb, 350.0, chunks=1238)},
        "compliance": [{"check": "causality", "passed": True, "detail": "scores fixed before targets"},
                       {"check": "single_pass", "passed": compliance_ok,
                        "detail": "each prediction scored once" if compliance_ok else "prediction 17 scored twice"},
                       {"check": "score_before_update", "passed": True, "detail": "ok"}],
        "time": {"total_seconds": eval_seconds, "projected_8gpu_seconds": eval_seconds / 8 * 1.1},
        "final": {"protocol": "ttt", "val_loss": final_bpb * NATS_PER_BPB, "val_bpb": final_bpb}})
    with open(os.path.join(path, "eval.log"), "w") as f:
        f.write(f"ttt val_loss:{final_bpb * NATS_PER_BPB:.8f} val_bpb:{final_bpb:.8f}\n")
    return path
