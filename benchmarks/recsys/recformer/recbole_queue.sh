#!/bin/bash
# Run RecBole baselines one at a time (2 shared cores), skipping models whose result JSON exists.
# Usage: benchmarks/recsys/recformer/recbole_queue.sh "standard:SASRec:20:1500 cold-start:GRU4Rec:1:900 ..."
#        (split:model:epoch cap:wall-clock seconds cap)
set -u
cd "$(dirname "$0")/../../.."
PY=runs/recbole-venv/bin/python
for job in $1; do
  IFS=: read -r split model epochs seconds <<< "$job"
  out=runs/recsys/bench/$split/$model.json
  if [ -f "$out" ]; then echo "skip $out"; continue; fi
  mkdir -p "runs/recsys/bench/$split"
  echo "$(date -u +%T) start $split $model (cap $epochs epochs, ${seconds}s)"
  OMP_NUM_THREADS=1 nice -n 10 $PY benchmarks/recsys/recformer/recbole_run.py --model "$model" \
    --data-root runs/recsys/recbole_data --dataset "ml-100k-$split" --epochs "$epochs" \
    --max-seconds "$seconds" --out "$out" > "runs/recsys/bench/$split.$model.log" 2>&1
  echo "$(date -u +%T) done $split $model rc=$?"
done
