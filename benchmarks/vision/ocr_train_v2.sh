#!/usr/bin/env bash
# Issue 25 training on a 2-core CPU: the pretrained-stem ablation, then the main run (resumable).
#
#   benchmarks/vision/ocr_train_v2.sh [MAIN_STOP_STEP]     (default 4000 = the whole schedule)
#
# 1. Two runs of the same model (pitch-scaled pages, EasyOCR-layout stem, stride 16x4), identical seed,
#    batches and schedule, for ABLATION_STEPS steps: the stem from EasyOCR's pretrained english_g2 CRNN
#    (runs/ocr/v2_pre) and at random initialisation (runs/ocr/v2_rand).
# 2. Selection rule, fixed before the runs: the run with the lower mean training loss (CE + 0.5 CTC) over
#    its last 50 steps wins (every step renders new pages, so this is loss on unseen pages); that run is
#    then continued to MAIN_STOP_STEP. Re-running this script resumes wherever it stopped (each run
#    resumes from its OUT/checkpoint).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${VENV:-.venv}/bin
ABLATION_STEPS=${ABLATION_STEPS:-150}
MAIN_STOP=${1:-4000}
COMMON=(--steps 4000 --line-steps 800 --grow-steps 800 --batch-size 8 --lr 1e-3 --eval-every 75 --stem easyocr)
export OMP_NUM_THREADS=1
for init in easyocr none; do
  out=runs/ocr/v2_$([ "$init" = easyocr ] && echo pre || echo rand)
  if [ ! -f "$out/last/trainer_state.json" ] || [ "$("$BIN/python" -c "import json;print(json.load(open('$out/last/trainer_state.json'))['step'])")" -lt "$ABLATION_STEPS" ]; then
    nice -n 10 "$BIN/seqverse-vision" ocr train -o "$out" "${COMMON[@]}" --stem-init "$init" --stop-step "$ABLATION_STEPS"
  fi
done
best=$("$BIN/python" - "$ABLATION_STEPS" <<'EOF'
import json, sys
n = int(sys.argv[1])
def tail(run):
    rows = [json.loads(x) for x in open(f"runs/ocr/{run}/metrics.jsonl") if '"loss"' in x]
    rows = [r for r in rows if n - 50 < r["step"] <= n]
    return sum(r["loss"] for r in rows) / len(rows)
scores = {run: tail(run) for run in ("v2_pre", "v2_rand")}
print(json.dumps(scores), file=sys.stderr)
print(min(scores, key=scores.get))
EOF
)
echo "continuing runs/ocr/$best to step $MAIN_STOP" >&2
init=$([ "$best" = v2_pre ] && echo easyocr || echo none)
nice -n 10 "$BIN/seqverse-vision" ocr train -o "runs/ocr/$best" "${COMMON[@]}" --stem-init "$init" --stop-step "$MAIN_STOP"
