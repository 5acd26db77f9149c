#!/usr/bin/env bash
# docs/PERFORMANCE.md's before -> after tables, measured in one sitting on one
# machine (stop every training run first: a benchmark beside one measures nothing).
#
#   bash benchmarks/perf_tables.sh                 # JSON lines in ./perf_results/
#   OUT=/tmp/perf bash benchmarks/perf_tables.sh
#   AUTHORS_REPO=/tmp/SAFR TORCH_DIR=/path/to/torch bash benchmarks/perf_tables.sh  # + the authors' code
#
# "before" is the step as train.py ran it before the speed work: glibc's
# default malloc, random batches. "after" is what train.py does now (malloc
# tuning on); "after, bucketed" adds data.batching=bucketed. Then the long-input
# memory check (L = 2048, batch 8, the default query_block_size="auto") and the
# compilation cache's start-up saving, and an IMDB `safr_jax.evaluate`. About
# 30 minutes on 2 CPU cores.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-perf_results}
mkdir -p "$OUT"
IMDB_STEPS=(--steps=8 --repeats=3 --eval_repeats=1)

bench() {  # name, then throughput.py arguments
  local name=$1; shift
  echo "=== $name: $*"
  python benchmarks/throughput.py --peak_repeats=3 --json="$OUT/$name.json" "$@" \
    2>&1 | grep -v '^{' | grep -v '^W[0-9]' || echo "FAILED: $name"
}

# The authors' own PyTorch step on the same text (optional: needs a checkout of
# chili-lab/SAFR in AUTHORS_REPO and torch on TORCH_DIR; see authors_speed.py).
if [ -n "${AUTHORS_REPO:-}" ]; then
  for ds in sst2 imdb; do
    steps=(); [ $ds = imdb ] && steps=(--steps=5 --repeats=3)
    echo "=== authors_$ds"
    PYTHONPATH=${TORCH_DIR:-} python benchmarks/authors_speed.py --authors_repo="$AUTHORS_REPO" \
      --dataset=$ds --json="$OUT/authors_$ds.json" "${steps[@]}" 2>&1 | grep -v '^{' \
      || echo "FAILED: authors_$ds"
  done
fi

for cfg in sst2 imdb; do
  extra=(); [ $cfg = imdb ] && extra=("${IMDB_STEPS[@]}")
  bench "${cfg}_before" --config=configs/$cfg.py --nomalloc_tuning --config.data.batching=random "${extra[@]}"
  bench "${cfg}_after" --config=configs/$cfg.py --config.data.batching=random "${extra[@]}"
  bench "${cfg}_after_bucketed" --config=configs/$cfg.py --config.data.batching=bucketed "${extra[@]}"
  bench "${cfg}_reference_before" --config=configs/$cfg.py:reference --nomalloc_tuning "${extra[@]}"
  bench "${cfg}_reference_after" --config=configs/$cfg.py:reference "${extra[@]}"
done

echo "=== long inputs: L = 2048, batch 8"
python benchmarks/memory_long_seq.py --query_block_sizes=auto,none 2>&1 | tail -3 | tee "$OUT/memory_long_seq.txt"
echo "=== compilation cache"
python benchmarks/startup.py 2>&1 | tail -5 | tee "$OUT/startup.txt"
echo "=== safr_jax.evaluate on imdb (a 4-step checkpoint: the time does not depend on training)"
rm -rf "$OUT/imdb_eval_run"
python train.py --config=configs/imdb.py --workdir="$OUT/imdb_eval_run" --config.train.stop_after_steps=4 \
  --config.train.checkpoint_every_steps=3 --config.train.progress_bar=False >/dev/null 2>&1
/usr/bin/time -v python -m safr_jax.evaluate --workdir="$OUT/imdb_eval_run" --split=test 2>&1 \
  | grep -E "Wrote|Elapsed|Maximum resident" | tee "$OUT/imdb_evaluate.txt"
