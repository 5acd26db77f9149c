#!/usr/bin/env bash
# Checks and throughput of safr-jax on a GPU or TPU machine, in about 8 minutes.
#
#   bash benchmarks/accelerator_check.sh                      # results in ./accelerator_results/
#   OUT=/some/dir bash benchmarks/accelerator_check.sh        # results in /some/dir/results.jsonl
#   OUT=/some/file.jsonl bash benchmarks/accelerator_check.sh
#   SAFR_CHECK_QUICK=1 bash benchmarks/accelerator_check.sh   # tiny models: checks the script (CPU ok)
#
# Steps (each under `timeout`; a failure is recorded and the next step runs):
#   1. tests that matter on a device: losses, model, init, sharding, precision
#      (the golden files: ../shared/golden or $SAFR_GOLDEN_DIR);
#   2. benchmarks/throughput.py on ONE device (--num_devices=1): configs/sst2.py,
#      configs/imdb.py and a wider model (imdb, d_model 1024, 16 heads, 4 layers,
#      d_ff 4096, max_len 512), each in float32 and bfloat16: train and eval
#      examples/s, achieved FLOP/s, the machine's own matmul peak on the model's
#      shapes, efficiency (achieved / matmul peak) and MFU (achieved / nominal
#      peak of the device kind, "n/a" when the kind is not in throughput.py's
#      NOMINAL_PEAK_TFLOPS);
#   3. data parallel over all devices (sst2 and imdb, bfloat16; weak scaling:
#      global batch 32 x devices) and its scaling vs. one device; skipped with
#      one device (in quick mode on CPU it runs on 2 forced host devices).
# Every result is one JSON line in results.jsonl; logs/ holds each step's output;
# a summary is printed at the end. Exit status 0 if every step passed, else 1.
#
# Environment: SAFR_CHECK_QUICK=1 (tiny configs, 1-2 timed passes),
# SAFR_CHECK_BUDGET_S (default 480 s, 1200 in quick mode: a step that would start later is
# skipped, and none runs past it),
# SAFR_CHECK_TESTS (test files to run, space separated), PYTHON (default python).

set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=${PYTHON:-python}
QUICK=${SAFR_CHECK_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then BUDGET=${SAFR_CHECK_BUDGET_S:-1200}; else BUDGET=${SAFR_CHECK_BUDGET_S:-480}; fi

# Where results go: $OUT (a folder, or a file ending in .json/.jsonl), else ./accelerator_results/.
OUT_ARG=${OUT:-$ROOT/accelerator_results/}
if [[ "$OUT_ARG" == *.jsonl || "$OUT_ARG" == *.json ]]; then
  RESULTS=$OUT_ARG
  RDIR=$(dirname "$OUT_ARG")
else
  RDIR=${OUT_ARG%/}
  RESULTS=$RDIR/results.jsonl
fi
LOGS=$RDIR/logs
mkdir -p "$RDIR" "$LOGS" || exit 2
: > "$RESULTS"
TMP=$(mktemp -d) || exit 2
trap 'rm -rf "$TMP"' EXIT

if [[ "$QUICK" == 1 ]]; then
  SST2=configs/sst2.py:quick
  IMDB=configs/imdb.py:quick
  WIDE=(--config.model.d_model=64 --config.model.num_heads=4 --config.model.num_layers=2
        --config.model.d_ff=256 --config.data.max_len=64)
  TIMING=(--steps=2 --repeats=1 --eval_repeats=1 --peak_repeats=1)
  BATCH=16 EVAL_BATCH=64
  DEFAULT_TESTS="tests/test_losses.py"
  T_TESTS=240 T_RUN=240
else
  SST2=configs/sst2.py
  IMDB=configs/imdb.py
  WIDE=(--config.model.d_model=1024 --config.model.num_heads=16 --config.model.num_layers=4
        --config.model.d_ff=4096 --config.data.max_len=512)
  TIMING=(--steps=20 --repeats=3 --eval_repeats=1 --peak_repeats=3)
  BATCH=32 EVAL_BATCH=128
  DEFAULT_TESTS="tests/test_losses.py tests/test_model.py tests/test_init.py tests/test_sharding.py tests/test_precision.py"
  T_TESTS=200 T_RUN=150
fi
read -r -a TESTS <<< "${SAFR_CHECK_TESTS:-$DEFAULT_TESTS}"

FAILED=()

# record STEP NAME STATUS RC SECONDS LOG [JSON_FILE] [EXTRA_JSON]: one line in $RESULTS.
record() {
  "$PY" - "$RESULTS" "$@" <<'PY'
import json, pathlib, sys
out, step, name, status, rc, secs, log = sys.argv[1:8]
res = sys.argv[8] if len(sys.argv) > 8 else ""
extra = sys.argv[9] if len(sys.argv) > 9 else ""
rec = {"step": step, "name": name, "status": status, "rc": int(rc),
       "seconds": float(secs), "log": log}
if extra:
  rec.update(json.loads(extra))
lines = []
if log and pathlib.Path(log).is_file():
  lines = [l for l in pathlib.Path(log).read_text(errors="replace").splitlines() if l.strip()]
if res and pathlib.Path(res).is_file() and pathlib.Path(res).stat().st_size:
  try:
    r = json.loads(pathlib.Path(res).read_text().splitlines()[0])
  except (ValueError, IndexError) as e:
    rec["status"], rec["error"] = "failed", f"unreadable JSON result: {e}"
  else:
    m = r.get("machine", {})
    rec.update({
        "config": r.get("config"), "dtype": r.get("dtype"), "batch_size": r.get("batch_size"),
        "mesh_devices": r.get("mesh_devices"), "device_kind": m.get("device_kind"),
        "mean_width": r.get("mean_width"),
        "train_examples_per_s": r.get("train", {}).get("examples_per_s"),
        "eval_examples_per_s": (r.get("eval") or {}).get("examples_per_s"),
        "achieved_flop_per_s": r.get("achieved_flop_per_s", {}).get("analytic"),
        "matmul_peak_flop_per_s": r.get("matmul_peak_flop_per_s"),
        "efficiency": r.get("efficiency"), "mfu": r.get("mfu"),
        "nominal_peak_basis": r.get("nominal_peak_basis"), "result": r})
elif step == "throughput" and status == "ok":
  rec["status"], rec["error"] = "failed", "no JSON result written"
if step == "tests" and lines:
  rec["summary"] = lines[-1]
if rec["status"] != "ok":
  rec["error_tail"] = lines[-8:]
with open(out, "a") as f:
  f.write(json.dumps(rec, default=str) + "\n")
print(f"[{rec['status']}] {step} {name} ({rec['seconds']:.0f} s)"
      + (f": {rec.get('summary')}" if rec.get("summary") else "")
      + (f": {rec['train_examples_per_s']:.1f} train examples/s" if rec.get("train_examples_per_s") else ""),
      flush=True)
sys.exit(0 if rec["status"] == "ok" else 1)
PY
}

# run_step STEP NAME TIMEOUT_S JSON_FILE EXTRA_JSON -- COMMAND...: runs under timeout, records.
run_step() {
  local step=$1 name=$2 limit=$3 json=$4 extra=$5
  shift 6
  local log="$LOGS/${step}_${name}.log"
  local left=$(( BUDGET - SECONDS ))
  if (( left < 20 )); then
    echo "skipped: ${left} s of the ${BUDGET} s budget left" > "$log"
    record "$step" "$name" "skipped" 0 0 "$log" "" "$extra" || true
    return
  fi
  (( limit > left )) && limit=$left
  local t0=$SECONDS rc status
  local shown="$*"
  shown=${shown//$'\n'/ }
  echo "--- $step $name: ${shown:0:400} (timeout ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  if ! record "$step" "$name" "$status" "$rc" "$(( SECONDS - t0 ))" "$log" "$json" "$extra"; then
    FAILED+=("$step $name")
  fi
}

# --- 0. the machine -------------------------------------------------------------------------
ENV_JSON=$TMP/env.json
run_step environment jax 120 "" "{}" -- "$PY" -c '
import json, os, platform, jax
d = jax.devices()
print(json.dumps({"jax": jax.__version__, "python": platform.python_version(),
                  "platform": d[0].platform, "device_kind": d[0].device_kind,
                  "devices": jax.device_count(), "local_devices": jax.local_device_count(),
                  "processes": jax.process_count(),
                  "default_matmul_precision": jax.config.jax_default_matmul_precision,
                  "loadavg": os.getloadavg()}))'
if grep -q '^{' "$LOGS/environment_jax.log" 2>/dev/null; then
  grep '^{' "$LOGS/environment_jax.log" | tail -1 > "$ENV_JSON"
  cat "$ENV_JSON"
  PLATFORM=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["platform"])' "$ENV_JSON")
  NDEV=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"])' "$ENV_JSON")
else
  PLATFORM=unknown NDEV=1
fi
command -v nvidia-smi > /dev/null && nvidia-smi > "$LOGS/nvidia-smi.log" 2>&1

# --- 1. tests -------------------------------------------------------------------------------
run_step tests pytest "$T_TESTS" "" "{\"files\": \"${TESTS[*]}\"}" -- \
  "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"

# --- 2. throughput on one device ------------------------------------------------------------
declare -A CFG=([sst2]="$SST2" [imdb]="$IMDB" [wide]="$IMDB")
for name in sst2 imdb wide; do
  for dtype in float32 bfloat16; do
    extra_flags=()
    [[ $name == wide ]] && extra_flags=("${WIDE[@]}")
    json=$TMP/tp_${name}_${dtype}.json
    run_step throughput "${name}_${dtype}" "$T_RUN" "$json" \
      "{\"model\": \"$name\", \"devices_used\": 1}" -- \
      "$PY" benchmarks/throughput.py --config="${CFG[$name]}" "${extra_flags[@]}" \
      --config.model.dtype="$dtype" --num_devices=1 --batch_size="$BATCH" \
      --config.train.eval_batch_size="$EVAL_BATCH" "${TIMING[@]}" --json="$json"
  done
done

# --- 3. data parallel over all devices ------------------------------------------------------
DP_ENV=()
DP_N=$NDEV
if [[ "$QUICK" == 1 && "$PLATFORM" == cpu && "$NDEV" == 1 ]]; then
  DP_N=2  # exercise the multi-device path on 2 forced host devices
  DP_ENV=(env "XLA_FLAGS=${XLA_FLAGS:-} --xla_force_host_platform_device_count=2")
fi
if (( DP_N >= 2 )); then
  for name in sst2 imdb; do
    json=$TMP/dp_${name}.json
    run_step data_parallel "${name}_bfloat16_x${DP_N}" "$T_RUN" "$json" \
      "{\"model\": \"$name\", \"devices_used\": $DP_N}" -- \
      "${DP_ENV[@]}" "$PY" benchmarks/throughput.py --config="${CFG[$name]}" \
      --config.model.dtype=bfloat16 --batch_size=$(( BATCH * DP_N )) \
      --config.train.eval_batch_size=$(( EVAL_BATCH * DP_N )) "${TIMING[@]}" --json="$json"
  done
else
  echo "data parallel: skipped (${NDEV} device)" > "$LOGS/data_parallel_skipped.log"
  record data_parallel all skipped 0 0 "$LOGS/data_parallel_skipped.log" "" \
    "{\"reason\": \"one device\"}" || true
fi

# --- summary --------------------------------------------------------------------------------
echo
"$PY" - "$RESULTS" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
env = next((r for r in recs if r["step"] == "environment"), None)
def pct(x): return "n/a" if x is None else f"{100 * x:.1f} %"
def fl(x): return "n/a" if x is None else (f"{x / 1e12:.1f} TF/s" if x >= 1e12 else f"{x / 1e9:.1f} GF/s")
print("=== accelerator check: summary ===")
info = None
if env is not None:
  try:
    info = json.loads([l for l in open(env["log"]) if l.startswith("{")][-1])
  except (OSError, IndexError, ValueError):
    pass
if info:
  print(f"devices: {info['devices']} x {info['device_kind']} ({info['platform']}), "
        f"jax {info['jax']}, load average {' '.join(f'{x:.2f}' for x in info['loadavg'])}")
else:
  print(f"devices: unknown (environment step {env['status'] if env else 'missing'})")
for r in recs:
  if r["step"] == "tests":
    print(f"tests: {r['status']}: {r.get('summary', '')}")
print(f"{'run':24s} {'dev':>3s} {'train ex/s':>11s} {'eval ex/s':>10s} {'achieved':>10s}"
      f" {'mm peak':>10s} {'effic.':>7s} {'MFU':>7s}")
one = {}
for r in recs:
  if r["step"] not in ("throughput", "data_parallel"):
    continue
  if r["status"] != "ok":
    print(f"{r['name']:24s} {r['status']}")
    continue
  if r["step"] == "throughput":
    one[(r["model"], r["dtype"])] = r["train_examples_per_s"]
  ev = r.get("eval_examples_per_s")
  print(f"{r['name']:24s} {r['mesh_devices']:>3d} {r['train_examples_per_s']:>11.1f}"
        f" {'n/a' if ev is None else f'{ev:.1f}':>10s} {fl(r['achieved_flop_per_s']):>10s}"
        f" {fl(r['matmul_peak_flop_per_s']):>10s} {pct(r['efficiency']):>7s} {pct(r['mfu']):>7s}")
for r in recs:
  if r["step"] == "data_parallel" and r["status"] == "ok":
    base = one.get((r["model"], "bfloat16"))
    if base:
      n = r["mesh_devices"]
      print(f"data parallel {r['model']} on {n} devices: {r['train_examples_per_s'] / base:.2f}x "
            f"one device = {100 * r['train_examples_per_s'] / (n * base):.0f} % scaling efficiency "
            "(global batch grows with the devices)")
bad = [f"{r['step']} {r['name']} ({r['status']})" for r in recs if r["status"] not in ("ok", "skipped")]
skipped = [f"{r['step']} {r['name']}" for r in recs if r["status"] == "skipped"]
if skipped:
  print("skipped:", "; ".join(skipped))
if bad:
  print("FAILED: " + "; ".join(bad))
else:
  print(f"no step failed ({len(skipped)} skipped)" if skipped else "all steps passed")
print(f"results: {sys.argv[1]}")
PY

(( ${#FAILED[@]} == 0 ))
