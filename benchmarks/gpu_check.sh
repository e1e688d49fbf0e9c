#!/usr/bin/env bash
# One prepared GPU check for a lent CUDA machine (issue: captured iterations). Estimated 7 to 8
# minutes on an H200 (compiles ~20-30 s per image shape and batch size, first in each process;
# later processes hit inductor's on-disk cache; since 2026-11-29 the optimizers' bookkeeping
# compiles too, a few small graphs more per batch size): give the device tool timeout_s 560. It
# has not run on a GPU yet in this form: read the step timestamps and trim if a step overruns.
# It uses the machine's own python3 (torch/pyarrow/fsspec/pillow/pytest; no Ray or DuckDB
# needed). Real weights: copy them into the ignored folder .weights/ and carry it:
#   mkdir -p .weights && cp ../shared/models/vgg16-hed-features.pth .weights/
#   device run: carry [".weights"], command "bash benchmarks/gpu_check.sh", timeout_s 560
# Prints, most important first:
#   1. the gpu-marked tests (CUDA graphs vs eager, graph reuse, batches, precisions);
#   2. pairs per GPU-hour at 512 px / 500 L-BFGS iterations, tf32 and bf16, compile on/off,
#      pairs-per-gpu 1 and 8 (targets: >= 3000 at ppg 1, >= 6000 batched);
#   3. ms per iteration inside the real loop, one pair, L-BFGS, compile on (target <= 2 ms);
#   4. time to quality: the fp32 eager 1000-iteration L-BFGS baseline's yardstick within 1%,
#      per pair of GPU time with compile amortised over 100 pairs (target: <= 1/10 of the time);
#   5. (NST_CHECK_OVERHEAD=1) the objective+gradient probe, eager vs captured, and the
#      kernel and graph launches per iteration (benchmarks.launch_count);
#   6. (NST_CHECK_PHOTO=1, ~4 min more: run it on its own, NST_CHECK_ONLY_PHOTO=1) the photo
#      quality benchmark at 512 px, 500 + 500 iterations, pairs 1-8 and the face pair, images
#      only (the machine has no scikit-image): untar $OUT/photo_1-4.tar and photo_5-8.tar into
#      DIR and score on the CPU with `python -m benchmarks.photo_quality --score-only --out DIR
#      --pairs 1 2 3 4 5 6 7 8 face`. Variants: stage 2 and stage 1 alone, each with none, match
#      (the default), smooth and affine; then benchmarks.photo_post_time (the post-processes'
#      share of the optimisation's time on the GPU, pairs 1 and 2).
#      It needs the photo pairs carried too:
#      mkdir -p .weights/shared/data && cp -r ../shared/data/photo .weights/shared/data/
#   7. (step automask, ~1 min: NST_CHECK_STEPS="automask", pairs carried as for 6) automatic
#      masks' seconds a pair at 512 px on the GPU (issue 37: <= 5 % of the pair's optimisation,
#      whose seconds step 6 prints) and their mean IoU (benchmarks.mask_agreement).
# NST_CHECK_STEPS picks steps and their order (default "tests throughput loop ttq"; also
# overhead, photo), e.g. to rerun at once, on the still-warm machine, only what a first run
# did not reach: NST_CHECK_STEPS="loop ttq" bash benchmarks/gpu_check.sh
# With $OUT set (the device tool), the log and the time-to-quality contact sheet go there. Copy
# the tables into benchmarks/RESULTS.md with the date and the card. Each step has its own cap.
# NST_CHECK_REHEARSE=1 runs the same command lines on this CPU at 64 px with a few iterations
# (the gpu tests skip; the numbers mean nothing): rehearse before spending device time, e.g.
#   NST_CHECK_REHEARSE=1 PY=.venv/bin/python OUT=/tmp/rehearsal bash benchmarks/gpu_check.sh
# PY can be a venv with the GPU machine's torch 2.11 (recipe in RESULTS.md): rehearsed so on
# 2026-11-29, end to end, 11 min on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/nst-gpu-check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NST_WEIGHTS="${NST_WEIGHTS:-$PWD/.weights/vgg16-hed-features.pth}" NST_SHARED="$PWD/.weights/shared"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/nst-inductor-cache}"  # shared by the steps
mkdir -p "$NST_SHARED/models" && ln -sf "$NST_WEIGHTS" "$NST_SHARED/models/vgg16-hed-features.pth"
PY="${PY:-python3}"
# The real check's settings; the rehearsal's shrink sizes, iterations and batch, not the steps.
DEV=cuda SIZE=512 IT=500 IT_LOOP=100 IT_TTQ=1000 PPG="1 8" PAIRS="1 2 3 4 5 6 7 8"
if [[ "${NST_CHECK_REHEARSE:-0}" == 1 ]]; then
    DEV=cpu SIZE=64 IT=6 IT_LOOP=4 IT_TTQ=16 PPG="1 2" PAIRS="1 5"
fi
cap() { [[ "$DEV" == cuda ]] && echo "$1" || echo 1800; }  # a step's limit in s (CPU: compiles)
log() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
date -u; if [[ "$DEV" == cuda ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else echo "rehearsal on the CPU: $SIZE px, the numbers mean nothing"; fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
photo_check() {  # $1: timeout in s. Two tars of PNGs (16 MiB each at most come back), no .pt
    log "photo quality: $SIZE px, $IT + $IT L-BFGS iterations, pairs $PAIRS (images only)"
    # shellcheck disable=SC2086
    timeout "$(cap "$1")" "$PY" -m benchmarks.photo_quality --device "$DEV" --size "$SIZE" \
        --iterations "$IT" --pairs $PAIRS face --configs photo --postprocess none match smooth \
        affine --stage1-too --no-metrics --out "$OUT/photo"
    (cd "$OUT/photo" && tar -cf "$OUT/photo_1-4.tar" [1-4]_*.png \
        && tar -cf "$OUT/photo_5-8.tar" [5-8]_*.png face_*.png)
    rm -rf "$OUT/photo"
    log "photo post-processes against the optimisation, $SIZE px (issue 33: <= 20 %)"
    timeout "$(cap 120)" "$PY" -m benchmarks.photo_post_time --device "$DEV" --size "$SIZE" \
        --iterations "$IT" --pairs 1 2 --out "$OUT/post"
    rm -rf "$OUT/post"
}
tests() {
    log "gpu tests"
    # -W: the machine's torch is not the pinned one; its deprecations are not what this checks
    timeout "$(cap 200)" "$PY" -m pytest -q -m gpu -p no:cacheprovider -W ignore::DeprecationWarning tests/nst_ops/test_gpu.py
}
throughput() {
    log "throughput: $SIZE px, $IT L-BFGS iterations, compile on vs off"
    # shellcheck disable=SC2086
    timeout "$(cap 200)" "$PY" -m benchmarks.gpu_throughput --device "$DEV" --size "$SIZE" \
        --iterations "$IT" --pairs-per-gpu $PPG --optimizer lbfgs --precisions tf32 bf16 --compile on off
}
loop() {
    log "iteration speed in the loop: one pair, L-BFGS, compile on"
    for precision in tf32 bf16; do
        timeout "$(cap 60)" "$PY" -m benchmarks.iteration_speed --device "$DEV" --sizes "$SIZE" \
            --models vgg16 --iterations "$IT_LOOP" --optimizer lbfgs --precision "$precision" \
            --compile on --repeats 3
    done
}
ttq() {
    log "time to quality: $SIZE px, baseline $IT_TTQ L-BFGS iterations fp32 eager, yardstick within 1%"
    timeout "$(cap 150)" "$PY" -m benchmarks.time_to_quality --device "$DEV" --size "$SIZE" \
        --iterations "$IT_TTQ" --measure yardstick --tolerance 0.01 --amortise 100 \
        --configs "bf16 lbfgs captured ppg 8" "tf32 lbfgs captured ppg 8" "bf16 adam captured ppg 8" \
        --sheet "$OUT/time_to_quality.png"
}
overhead() {
    log "launch overhead: objective+gradient eager vs torch.compile(reduce-overhead), $SIZE px"
    timeout "$(cap 120)" "$PY" -m benchmarks.overhead_probe --device "$DEV" --size "$SIZE" --precision tf32
    log "launches per iteration: python ops, compiled calls, kernels and graphs, $SIZE px"
    timeout "$(cap 120)" "$PY" -m benchmarks.launch_count --device "$DEV" --size "$SIZE" 2>&1 \
        | grep -v "^USDT"  # the profiler's start/stop lines
}
automask() {
    log "automatic masks: seconds a pair at $SIZE px, pairs $PAIRS (issue 37)"
    # shellcheck disable=SC2086
    timeout "$(cap 120)" "$PY" -m benchmarks.mask_agreement --device "$DEV" --size "$SIZE" \
        --regions 3 --pairs $PAIRS
}
photo() { photo_check 300; }
STEPS="${NST_CHECK_STEPS:-tests throughput loop ttq}"
[[ "${NST_CHECK_OVERHEAD:-0}" == 1 ]] && STEPS="$STEPS overhead"
[[ "${NST_CHECK_PHOTO:-0}" == 1 ]] && STEPS="$STEPS photo"
[[ "${NST_CHECK_ONLY_PHOTO:-0}" == 1 ]] && STEPS="only_photo"
only_photo() { photo_check 420; }
for step in $STEPS; do
    case "$step" in
        tests | throughput | loop | ttq | overhead | photo | only_photo | automask) "$step" ;;
        *) echo "NST_CHECK_STEPS: unknown step '$step' (tests throughput loop ttq overhead photo automask)"; exit 2 ;;
    esac
done
log "done"
