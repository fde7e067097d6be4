#!/usr/bin/env bash
# Issue 25 training on a 2-core CPU: the pretrained-stem ablation, then the main run (resumable).
#
#   benchmarks/vision/ocr_train_v2.sh [MAIN_STOP_STEP]     (default 4000 = the whole schedule)
#   RUN=v3 ABLATION_STEPS=800 benchmarks/vision/ocr_train_v2.sh    (round v3: runs/ocr/v3_pre, v3_rand)
#
# The model is receipt_config() as of the checkout: v2's runs used it before 2026-12-07 (commit 1b658dc),
# v3 adds the stem LayerNorm and sine column codes (packages/vision/README.md, "Why v2 did not read").
#
# 1. Two runs of the same model (pitch-scaled pages, EasyOCR-layout stem, stride 16x4), identical seed,
#    batches and schedule, for ABLATION_STEPS steps: the stem from EasyOCR's pretrained english_g2 CRNN
#    (runs/ocr/${RUN}_pre) and at random initialisation (runs/ocr/${RUN}_rand).
# 2. Selection rule, fixed before the runs: the run with the lower mean training loss (CE + 0.5 CTC) over
#    its last 50 steps wins (every step renders new pages, so this is loss on unseen pages); that run is
#    then continued to MAIN_STOP_STEP. Re-running this script resumes wherever it stopped (each run
#    resumes from its OUT/checkpoint).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${VENV:-.venv}/bin
RUN=${RUN:-v2}
ABLATION_STEPS=${ABLATION_STEPS:-150}
MAIN_STOP=${1:-4000}
COMMON=(--steps 4000 --line-steps 800 --grow-steps 800 --batch-size 8 --lr 1e-3 --eval-every 75 --stem easyocr)
export OMP_NUM_THREADS=1
for init in easyocr none; do
  out=runs/ocr/${RUN}_$([ "$init" = easyocr ] && echo pre || echo rand)
  if [ ! -f "$out/last/trainer_state.json" ] || [ "$("$BIN/python" -c "import json;print(json.load(open('$out/last/trainer_state.json'))['step'])")" -lt "$ABLATION_STEPS" ]; then
    nice -n 10 "$BIN/seqverse-vision" ocr train -o "$out" "${COMMON[@]}" --stem-init "$init" --stop-step "$ABLATION_STEPS"
  fi
done
best=$("$BIN/python" - "$ABLATION_STEPS" "$RUN" <<'EOF'
import json, sys
n, run = int(sys.argv[1]), sys.argv[2]
def tail(run):
    rows = [json.loads(x) for x in open(f"runs/ocr/{run}/metrics.jsonl") if '"loss"' in x]
    rows = [r for r in rows if n - 50 < r["step"] <= n]
    return sum(r["loss"] for r in rows) / len(rows)
scores = {r: tail(r) for r in (f"{run}_pre", f"{run}_rand")}
print(json.dumps(scores), file=sys.stderr)
print(min(scores, key=scores.get))
EOF
)
echo "continuing runs/ocr/$best to step $MAIN_STOP" >&2
init=$([ "$best" = "${RUN}_pre" ] && echo easyocr || echo none)
nice -n 10 "$BIN/seqverse-vision" ocr train -o "runs/ocr/$best" "${COMMON[@]}" --stem-init "$init" --stop-step "$MAIN_STOP"
