#!/usr/bin/env bash
# One prepared GPU check for a lent CUDA machine: about 5.5 minutes of work on an H200 (from the
# step timings measured there on 2026-11-27), an estimated 6.5-7 on an H100; give the device tool
# timeout_s 540. Optional steps: NST_CHECK_OVERHEAD=1 adds the launch-overhead probe (eager vs
# CUDA graphs, at most 2.5 minutes), NST_CHECK_TTQ=1 the time-to-quality step (about 2 minutes);
# with either, give it 600 (on an H100 the last optional step may be cut off by its cap).
# It uses the machine's own python3 (which holds torch/torchvision/pyarrow/fsspec/pillow; Ray and
# DuckDB are not needed here). Real weights: copy them into the ignored folder .weights/ and
# carry it:
#   mkdir -p .weights && cp ../shared/models/vgg16-hed-features.pth .weights/
#   device run: carry [".weights"], command "bash benchmarks/gpu_check.sh"
# Prints, most important first: the gpu-marked tests; pairs per GPU-hour at 512 px / 500
# iterations for pairs-per-gpu 1, 4, 8 and each precision (L-BFGS, then Adam); s/iteration vs
# the FLOP floor per precision; Adam rows every iteration vs in blocks; optionally time to
# quality at 512 px. With $OUT set (the device tool), the log (and the time-to-quality contact
# sheet) go there. Copy the tables into benchmarks/RESULTS.md with the date and the card.
# Each step has its own time cap, so one slow step cannot take the rest; the slow fp32 runs come
# last in the throughput step.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/nst-gpu-check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NST_WEIGHTS="${NST_WEIGHTS:-$PWD/.weights/vgg16-hed-features.pth}" NST_SHARED="$PWD/.weights/shared"
mkdir -p "$NST_SHARED/models" && ln -sf "$NST_WEIGHTS" "$NST_SHARED/models/vgg16-hed-features.pth"
PY="${PY:-python3}"
log() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
log "gpu tests"
timeout 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
log "throughput: 512 px, 500 L-BFGS iterations"
timeout 240 "$PY" -m benchmarks.gpu_throughput --device cuda --size 512 --iterations 500 \
    --pairs-per-gpu 1 4 8 --optimizer lbfgs --precisions tf32 bf16 fp32
log "iteration speed"
for precision in fp32 tf32 bf16; do
    timeout 60 "$PY" -m benchmarks.iteration_speed --device cuda --sizes 256 512 --iterations 30 \
        --precision "$precision"
done
log "host syncs: Adam rows every iteration vs in blocks of 16 (vgg16, tf32)"
for every in 1 16; do
    timeout 40 "$PY" -m benchmarks.iteration_speed --device cuda --sizes 256 512 --iterations 60 \
        --models vgg16 --precision tf32 --rows-per-flush "$every"
done
log "throughput: 512 px, 500 Adam iterations"
timeout 90 "$PY" -m benchmarks.gpu_throughput --device cuda --size 512 --iterations 500 \
    --pairs-per-gpu 1 8 --optimizer adam --precisions tf32 bf16
if [[ "${NST_CHECK_OVERHEAD:-0}" == 1 ]]; then
    log "launch overhead: objective+gradient eager vs torch.compile(reduce-overhead), 256 px"
    timeout 150 "$PY" -m benchmarks.overhead_probe --device cuda --size 256 --precision tf32
fi
if [[ "${NST_CHECK_TTQ:-0}" == 1 ]]; then
    log "time to quality: 512 px, baseline 1000 L-BFGS iterations"
    timeout 150 "$PY" -m benchmarks.time_to_quality --device cuda --size 512 --iterations 1000 \
        --configs "adam lr 0.02" "3 scales, short coarse" "bf16 lbfgs" --sheet "$OUT/time_to_quality.png"
fi
log "done"
