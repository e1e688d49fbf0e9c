#!/usr/bin/env bash
# One prepared GPU check for a lent CUDA machine (about 6-8 minutes on one H100). It uses the
# machine's own python3 (which holds torch/torchvision/pyarrow/fsspec/pillow; Ray and DuckDB are
# not needed here). Real weights: copy them into the ignored folder .weights/ and carry it:
#   mkdir -p .weights && cp ../shared/models/vgg16-hed-features.pth .weights/
#   device run: carry [".weights"], command "bash benchmarks/gpu_check.sh"
# Prints: the gpu-marked tests, s/iteration vs the FLOP floor per precision, pairs per GPU-hour
# at 512 px / 500 iterations per precision, and time-to-quality at 512 px. Copy the tables into
# benchmarks/RESULTS.md with the date and the card.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NST_WEIGHTS="${NST_WEIGHTS:-$PWD/.weights/vgg16-hed-features.pth}" NST_SHARED="$PWD/.weights/shared"
mkdir -p "$NST_SHARED/models" && ln -sf "$NST_WEIGHTS" "$NST_SHARED/models/vgg16-hed-features.pth"
PY="${PY:-python3}"
log() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
log "gpu tests"
timeout 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
for precision in fp32 tf32 bf16; do
    log "iteration speed ($precision)"
    timeout 90 "$PY" -m benchmarks.iteration_speed --device cuda --sizes 256 512 --iterations 30 \
        --precision "$precision"
done
log "throughput: 512 px, 500 iterations"
timeout 200 "$PY" -m benchmarks.gpu_throughput --device cuda --size 512 --iterations 500 --pairs 2 \
    --model vgg16
log "time to quality: 512 px, baseline 1000 L-BFGS iterations"
timeout 240 "$PY" -m benchmarks.time_to_quality --device cuda --size 512 --iterations 1000
