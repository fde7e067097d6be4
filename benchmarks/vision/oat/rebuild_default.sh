#!/usr/bin/env bash
# Rebuild the embedded OAT default from nothing: synthetic displays, training (resumable), benchmark, export.
set -euo pipefail
BIN="${VENV:-.venv}/bin"
export OMP_NUM_THREADS=1
"$BIN/seqverse-vision" oat make-displays -o runs/oat/synth --seed 0
"$BIN/seqverse-vision" oat train --train runs/oat/synth/train.json --valid runs/oat/synth/valid.json \
  -o runs/oat/synth_oat --d-model 256 --layers 2 --epochs 40 --patience 100 --displays-per-batch 4 --seed 0
"$BIN/python" benchmarks/vision/oat/train_pixel.py runs/oat/synth runs/oat/synth_pixel --d-model 256 --layers 2 \
  --epochs 40 --patience 100
"$BIN/python" benchmarks/vision/oat/bench_oat.py synthetic --samples 20
"$BIN/python" benchmarks/vision/oat/export_default.py runs/oat/synth_oat
