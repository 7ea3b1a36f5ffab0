#!/usr/bin/env bash
# The GPU checks of one short device lease, most important first. Each stage runs under its own time limit and
# within the call's deadline, so that a slow one cannot starve the rest, and its results are packed into $OUT as
# soon as they exist (a lease can end at any moment). It runs under the GPU machine's own python3 and torch, the
# project on PYTHONPATH (nothing installed). Stages, in the order given (default: all):
#   tests      the `cuda` tests (the allocator's figures, OOM recovery, CUDA against the meta simulation per
#              attention kernel, dtype and autocast)                                   -> cuda-tests.xml
#   gpu        the main job, the `gpu` grid measured on CUDA (memory by phase, FLOPs, step time, MFU)
#                                                                                      -> gpu-cuda.tgz
#   max-batch  the largest batch in 80 GB, measured on the GPU under an emulated budget, for the README's
#              headline setups                                                         -> max-batch.jsonl
#   expandable the largest batch in 80 GB again for the setups where fragmentation cut it, with
#              PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True                       -> max-batch.jsonl
#   setups     every point of the `setups` grid at its own batch on CUDA (its max-batch search left out: too long
#              for one lease), to set beside the committed meta report                 -> setups-cuda.tgz
# and log.txt with everything printed. Render the reports here: `python -m profiler report --simulate reports/<folder>`.
# Usage (device machine): bash tools/gpu_session.sh [STAGE...]   (OUT defaults to /tmp/gpu-out; DEADLINE_S, the
# seconds this call may take, to 540)
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
py=python3
log=$OUT/log.txt
work=/tmp/gpu-session
mkdir -p $work/reports
deadline=$(( $(date +%s) + ${DEADLINE_S:-540} ))

run_limited() {  # run_limited LIMIT_SECONDS command...: logged, cut at LIMIT or at the deadline, never fatal
    local limit=$1 left=$(( deadline - $(date +%s) - 15 )); shift
    (( left < limit )) && limit=$left
    if (( limit < 10 )); then echo "=== skipped, deadline: $*" >>"$log"; return 1; fi
    echo "=== $(date -u +%T) [limit ${limit}s] $*" >>"$log"
    timeout --signal=INT --kill-after=10 "$limit" "$@"
    local rc=$?
    echo "=== $(date -u +%T) rc $rc" >>"$log"
    return $rc
}

environment() {
    { nvidia-smi -L; $py -c "import sys, torch; print(sys.version.split()[0], torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory)"
      $py -m pip list 2>/dev/null | grep -iE "^(torch|numpy|pandas|matplotlib|tqdm|sympy|pytest|hypothesis) "; } >>"$log" 2>&1
}

stage_tests() {
    run_limited 150 $py -m pytest -q -m cuda -p no:cacheprovider tests --junitxml="$OUT/cuda-tests.xml" >>"$log" 2>&1
}

stage_gpu() {
    run_limited 180 $py -m profiler sweep --device cuda --grid gpu --out $work/reports/gpu-cuda --no-report --quiet \
        >>"$log" 2>&1
    tar czf "$OUT/gpu-cuda.tgz" -C $work/reports gpu-cuda
}

max_batch() {  # max_batch ARGS...: the JSON answer for one setup, one line of max-batch.jsonl
    run_limited 60 $py -m profiler max-batch --device cuda --budget 80GB --json "$@" >$work/max-batch.json 2>>"$log" &&
        $py -c 'import json, sys; print(json.dumps({"args": sys.argv[2:], **json.load(open(sys.argv[1]))}))' \
            $work/max-batch.json "$@" >>"$OUT/max-batch.jsonl"
}

stage_max-batch() {
    max_batch --preset gpt2-xl
    max_batch --preset gpt2-xl --autocast bfloat16 --attention sdpa-flash
    max_batch --preset gpt2-xl --dtype bfloat16 --attention sdpa-flash
    max_batch --preset hf-gpt2-xl
    max_batch --preset llama2-7b --dtype bfloat16 --attention sdpa-flash
    max_batch --preset gpt2-xl --dtype bfloat16 --attention sdpa-flash --checkpointing full
}

stage_expandable() {  # the setups whose batch the allocator's fragmentation cut, with expandable segments
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True max_batch --preset gpt2-xl --autocast bfloat16 --attention sdpa-flash
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True max_batch --preset gpt2-xl --dtype bfloat16 --attention sdpa-flash
}

stage_setups() {
    sed -e 's/^name = "setups"/name = "setups-cuda"/' -e 's/^device = "meta"/device = "cuda"/' \
        -e '/^max_batch_budget/d' -e 's/^description = "meta; /description = "cuda, each point at its own batch; /' \
        -e 's/; the largest batch in 80 GB of each, measured"$/"/' \
        profiler/experiments/grids/setups.toml >$work/setups-cuda.toml
    run_limited 300 $py -m profiler sweep --device cuda --grid $work/setups-cuda.toml --out $work/reports/setups-cuda \
        --no-report --quiet >>"$log" 2>&1
    tar czf "$OUT/setups-cuda.tgz" -C $work/reports setups-cuda
}

environment
for stage in "${@:-tests gpu max-batch setups}"; do
    for name in $stage; do "stage_$name"; done
done
echo "=== $(date -u +%T) done" >>"$log"
