#!/usr/bin/env bash
# Rebuild ProLLaMA's embedded default and its benchmark from nothing (CPU, single thread each; every step resumes).
#   bash benchmarks/genomics/prollama/rebuild_embedded.sh
# Steps: data -> English base LLM -> three stage chains (official lr, the shipped lr, protein-only from scratch)
# -> one evaluate run with every baseline -> fp16 export into the package with its model card.
set -euo pipefail
BIN="${VENV:-.venv}/bin"
R=runs/prollama
S1="${STAGE1_STEPS:-150}"; S2="${STAGE2_STEPS:-150}"; LR="${LR:-1e-3}"
export OMP_NUM_THREADS=1
"$BIN/seqverse-genomics" prollama prepare --data-dir $R/data
"$BIN/seqverse-genomics" prollama pretrain-base --data-dir $R/data -o $R/base-en --steps 400
"$BIN/python" -c "from seqverse.genomics.prollama.base import random_base; random_base('$R/base-en', '$R/base-random')"
"$BIN/python" benchmarks/genomics/prollama/run_stages.py --base $R/base-en --out $R/official --stage1-steps $S1 --stage2-steps $S2 &
"$BIN/python" benchmarks/genomics/prollama/run_stages.py --base $R/base-en --out $R/general --stage1-steps $S1 --stage2-steps $S2 --stage1-lr $LR --stage2-lr $LR &
"$BIN/python" benchmarks/genomics/prollama/run_stages.py --base $R/base-random --out $R/scratch --stage1-steps $S1 --stage2-steps $S2 --stage1-lr $LR --stage2-lr $LR &
wait
"$BIN/seqverse-genomics" prollama evaluate --model $R/general/stage2 --peer official_lr5e-5=$R/official/stage2 \
  --peer protein_only_scratch=$R/scratch/stage2 --data-dir $R/data -n 20 --workers 3 -o $R/eval.json > benchmarks/genomics/prollama/results.md
"$BIN/python" benchmarks/genomics/prollama/export_embedded.py $R/general $R/eval.json
