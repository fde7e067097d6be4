#!/usr/bin/env bash
# Rebuild ProLLaMA's embedded default and its benchmark from nothing (CPU, one thread per chain; every step
# resumes when rerun):
#   bash benchmarks/genomics/prollama/rebuild_embedded.sh
# Steps (round 2, packages/genomics/README.md): data -> English base LLM (1,200 steps) -> two stage chains at
# equal steps, one per core (the English start and its protein-only twin) -> the selection run on validation
# clusters -> prediction decoding chosen on validation (round 4) -> one test run with every baseline -> fp16 export
# into the package with its model card.
set -euo pipefail
BIN="${VENV:-.venv}/bin"
R=runs/prollama
S1="${STAGE1_STEPS:-1500}"; S2="${STAGE2_STEPS:-6000}"; LR="${LR:-1e-3}"
export OMP_NUM_THREADS=1
"$BIN/seqverse-genomics" prollama prepare --data-dir $R/data
"$BIN/seqverse-genomics" prollama pretrain-base --data-dir $R/data -o $R/base-en --steps 1200
test -f $R/base-random/config.json ||
  "$BIN/python" -c "from seqverse.genomics.prollama.base import random_base; random_base('$R/base-en', '$R/base-random')"
for chain in general:base-en scratch:base-random; do
  "$BIN/python" benchmarks/genomics/prollama/run_stages.py --base $R/${chain#*:} --out $R/${chain%%:*} --data-dir $R/data \
    --stage1-steps $S1 --stage2-steps $S2 --stage1-lr $LR --stage2-lr $LR &
done
wait
"$BIN/seqverse-genomics" prollama evaluate --split valid --seed 1 -n 10 --model $R/general/stage2 \
  --data-dir $R/data -o $R/valid.json
# prediction decoding (argmax or label-prior corrected) chosen on validation for each chain (README round 4)
for chain in general scratch; do
  "$BIN/python" benchmarks/genomics/prollama/choose_prediction_decoding.py $R/$chain/stage2 --data-dir $R/data \
    -o $R/decoding_$chain.json --write
done
"$BIN/seqverse-genomics" prollama evaluate --model $R/general/stage2 --peer protein_only_scratch=$R/scratch/stage2 \
  --data-dir $R/data -n 20 --workers 2 -o $R/eval.json > benchmarks/genomics/prollama/results.md
"$BIN/python" benchmarks/genomics/prollama/export_embedded.py $R/general $R/eval.json $R/valid.json
