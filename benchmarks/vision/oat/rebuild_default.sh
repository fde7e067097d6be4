#!/usr/bin/env bash
# Rebuild the embedded OAT default from nothing: synthetic displays, two training stages (each
# resumable: re-running a train command picks up OUT/checkpoint), the pixel-level peer, the decoding
# chosen on validation, the benchmark, export.
set -euo pipefail
BIN="${VENV:-.venv}/bin"
export OMP_NUM_THREADS=1
# stage 1: the 40-layout corpus, 4 simulated people per display (the shipped stage 1 is epoch 21 of 22)
"$BIN/seqverse-vision" oat make-displays -o runs/oat/synth --seed 0
"$BIN/seqverse-vision" oat train --train runs/oat/synth/train.json --valid runs/oat/synth/valid.json \
  -o runs/oat/synth_oat --d-model 256 --layers 2 --epochs 22 --patience 100 --displays-per-batch 4 --seed 0
# stage 2: the same layouts and splits with more training data (a second random stream: 415 training
# displays x 8 people; validation and test files identical to stage 1's), continued from stage 1
"$BIN/seqverse-vision" oat make-displays -o runs/oat/synth2 --seed 0 --extra-train-people 4 --extra-train-targets 8
"$BIN/seqverse-vision" oat train --train runs/oat/synth2/train.json --valid runs/oat/synth2/valid.json \
  -o runs/oat/synth_oat_big --init runs/oat/synth_oat/best --epochs 60 --patience 100 --displays-per-batch 4 --seed 0
# the pixel-level peer, same size, about OAT's two stages' steps (70 x 104 = 7,280 vs 22 x 48 + 60 x 104 = 7,296)
"$BIN/python" benchmarks/vision/oat/train_pixel.py runs/oat/synth2 runs/oat/synth_pixel --d-model 256 --layers 2 \
  --epochs 70 --patience 100
"$BIN/python" benchmarks/vision/oat/select_decoding.py synthetic
"$BIN/python" benchmarks/vision/oat/bench_oat.py synthetic --samples 20
"$BIN/python" benchmarks/vision/oat/export_default.py runs/oat/synth_oat_big --continued-from runs/oat/synth_oat
