#!/usr/bin/env bash
# One prepared benchmark for a lent GPU (at most ~8 minutes on one GPU), one JSON out:
#   - `bench train` at SCALE: Md2-18 and Md2-50, with and without SA4Depth, fp32 and AMP (CUDA only),
#   - `bench infer`: the depth net's FPS at 640x192 (the paper: 61 FPS on a T4, the same with and
#     without SA4Depth, whose refinement exists only in training),
#   - `bench data`: the training loader's samples/s against what the training step consumes.
#
#   bash benchmarks/gpu.sh                        # DEVICE=cuda SCALE=full -> benchmarks/gpu_<device>_<scale>.json
#   DEVICE=cpu SCALE=tiny bash benchmarks/gpu.sh  # the same script on CPU in about a minute (tests, CI)
#
# Environment: DEVICE (cuda|cpu), SCALE (tiny|smoke|study|small|full), OUT (the JSON), STEPS
# (timed training steps per configuration), WORKERS (loader workers to try), KEEP=1 keeps the
# scratch directory. Needs only the checkout and its environment: the synthetic data for the
# loader benchmark is rendered into the scratch directory first.
set -euo pipefail

DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-full}
OUT=${OUT:-benchmarks/gpu_${DEVICE}_${SCALE}.json}
if [[ $SCALE == tiny ]]; then  # a check that the script works, not a measurement
    STEPS=${STEPS:-2}; WARMUP=1; REPEATS=3; BATCHES=2; DATA_SCALE=tiny; IN_H=64; IN_W=192
else
    STEPS=${STEPS:-10}; WARMUP=10; REPEATS=50; BATCHES=10; DATA_SCALE=smoke; IN_H=192; IN_W=640
fi
NPROC=$(nproc 2>/dev/null || echo 2)
WORKERS=${WORKERS:-"0 $(( NPROC < 8 ? NPROC : 8 ))"}
SA4DEPTH=${SA4DEPTH:-sa4depth}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sa4depth-gpu-bench.XXXXXX")
cleanup() { if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
say() { printf '[gpu.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
T0=$SECONDS

say "device=$DEVICE scale=$SCALE steps=$STEPS workers=($WORKERS) scratch=$WORK"

# 1. training step: fp32, then AMP (autocast + GradScaler; CUDA only)
$SA4DEPTH bench train --layers 18 50 --scale "$SCALE" --sa4depth --device "$DEVICE" --steps "$STEPS" \
    --warmup 2 --out "$WORK/train_fp32.json"
if [[ $DEVICE == cuda ]]; then
    $SA4DEPTH bench train --layers 18 50 --scale "$SCALE" --sa4depth --device "$DEVICE" --steps "$STEPS" \
        --warmup 2 --amp --out "$WORK/train_amp.json"
fi
say "bench train done ($((SECONDS - T0)) s)"

# 2. inference FPS of the depth net at the paper's 640x192, batch 1 (Table VI's FPS column)
for L in 18 50; do
    $SA4DEPTH bench infer --layers "$L" --height "$IN_H" --width "$IN_W" --device "$DEVICE" --warmup "$WARMUP" \
        --repeats "$REPEATS" --out "$WORK/infer_$L.json"
done
say "bench infer done ($((SECONDS - T0)) s)"

# 3. the loader: synthetic driving frames rendered here, read at SCALE's size and batch
$SA4DEPTH synth --profile driving --scale "$DATA_SCALE" --out-dir "$WORK/driving" --quiet
# shellcheck disable=SC2086
$SA4DEPTH bench data --scale "$SCALE" "data.roots.kitti=$WORK/driving/kitti_raw" \
    "data.splits_dir=$WORK/driving/splits" "data.cache_dir=$WORK/cache" --workers $WORKERS \
    --batches "$BATCHES" --out "$WORK/data.json"
say "bench data done ($((SECONDS - T0)) s)"

# 4. one JSON: the parts as measured, plus the loader's margin over the step's demand
python - "$WORK" "$OUT" "$DEVICE" "$SCALE" "$((SECONDS - T0))" <<'PYEOF'
import json, os, platform, subprocess, sys, tempfile
work, out, device, scale, wall = sys.argv[1:6]
def load(name):
    p = os.path.join(work, name)
    return json.load(open(p)) if os.path.exists(p) else None
train = {"fp32": load("train_fp32.json"), "amp": load("train_amp.json")}
infer = {L: load(f"infer_{L}.json") for L in ("18", "50")}
data = load("data.json")
def rows(res):
    if res is None:
        return []
    if isinstance(res, dict):
        return res.get("results") or res.get("rows") or []
    return res
# the fastest training configuration's demand against the best loader setting (a cache fill is a
# one-off, not a steady state)
demand = max((r.get("images_per_s", 0.0) for k in train for r in rows(train[k]) if isinstance(r, dict)),
             default=None)
supply = max((r.get("samples_per_s", 0.0) for r in rows(data)
              if isinstance(r, dict) and r.get("mode") != "cache-fill"), default=None)
try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
except OSError:
    commit = None
gpu = None
if device == "cuda":
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
result = {
    "benchmark": "benchmarks/gpu.sh", "device": device, "gpu": gpu, "scale": scale,
    "host": platform.node(), "cpu_count": os.cpu_count(), "commit": commit, "wall_s": int(wall),
    "train": train, "infer": infer, "data": data,
    "loader_samples_per_s_best": supply, "train_images_per_s_best": demand,
    "loader_over_demand": (supply / demand) if supply and demand else None,
}
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix=".tmp")
with os.fdopen(fd, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
os.replace(tmp, out)
print(f"-> wrote {out} ({wall} s)")
PYEOF
