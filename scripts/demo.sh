#!/usr/bin/env bash
# `make demo`: each system's main job on its embedded default model and data this machine ships.
# Outputs go to runs/demo/ (or $DEMO_OUT), regenerated each time.
set -euo pipefail
BIN="${VENV:-.venv}/bin"
OUT="${DEMO_OUT:-runs/demo}"
rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "core: every backbone, recurrent step mode against forward"
"$BIN/seqverse" demo

step "genomics / DNA-ESA: index lambda phage (Debian bowtie2 example), align 400 ART reads, score against ART's truth"
zcat /usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz > "$OUT/lambda.fa"
art_illumina -ss MSv3 -sam -i "$OUT/lambda.fa" -l 250 -c 400 -rs 1 -o "$OUT/lambda_reads" -q > /dev/null
"$BIN/seqverse-genomics" esa index "$OUT/lambda.fa" -o "$OUT/lambda.esa"
"$BIN/seqverse-genomics" esa align "$OUT/lambda.esa" "$OUT/lambda_reads.fq" -o "$OUT/lambda.sam"
"$BIN/seqverse-genomics" esa evaluate --truth "$OUT/lambda_reads.sam" "$OUT/lambda.sam"

step "genomics / HyenaDNA: bits per base of lambda phage, then 120 sampled bases"
"$BIN/seqverse-genomics" hyena score "$OUT/lambda.fa"
"$BIN/seqverse-genomics" hyena generate --prompt ATGAAA -n 120 --temperature 0.8 --top-k 3

step "genomics / ProLLaMA: 3 Pkinase proteins from the embedded model -> $OUT/prollama.fa, then their predicted superfamilies"
"$BIN/seqverse-genomics" prollama generate --superfamily Pkinase -n 3 --seed 1 -o "$OUT/prollama.fa"
"$BIN/seqverse-genomics" prollama predict "$OUT/prollama.fa"

step "speech / AdaSpeech: 'hello world' in the shipped adapted voice -> $OUT/hello.wav"
"$BIN/seqverse-speech" adaspeech say "hello world" -o "$OUT/hello.wav"

step "speech / EMOTE: a held-out espeak-ng voice says a sentence; the face speaks it, happy -> $OUT/emote.npz, $OUT/emote.mp4"
espeak-ng -v en-gb-scotland+klatt -w "$OUT/emote_in.wav" "Bob may bring pie, and maybe a map."
"$BIN/seqverse-speech" emote animate "$OUT/emote_in.wav" --emotion happy --intensity 3 -o "$OUT/emote" --video "$OUT/emote.mp4"

step "vision / OCR: two synthetic receipts read by the embedded model, CER and word F1"
"$BIN/seqverse-vision" ocr synth -n 2 -o "$OUT/receipts" --seed 777
"$BIN/seqverse-vision" ocr read "$OUT"/receipts/*.png -o "$OUT/ocr"
"$BIN/seqverse-vision" ocr evaluate "$OUT/ocr" "$OUT/receipts"

step "vision / OAT: predict and plot the scanpath on one synthetic search display (embedded model) -> $OUT/oat/plots"
"$BIN/seqverse-vision" oat make-displays -o "$OUT/oat" --layouts 8 --people 1 --json > /dev/null
"$BIN/python" -c "import json,sys; d=json.load(open(sys.argv[1])); k=sorted(d)[0]; json.dump({k: d[k]}, open(sys.argv[2], 'w'))" \
  "$OUT/oat/test_layout.json" "$OUT/oat/one.json"
"$BIN/seqverse-vision" oat predict "$OUT/oat/one.json" -o "$OUT/oat/pred.json"
"$BIN/seqverse-vision" oat plot "$OUT/oat/one.json" "$OUT/oat/pred.json" -o "$OUT/oat/plots"

step "recsys / Recformer: top 10 MovieLens-100K recommendations for user 196"
"$BIN/seqverse-recsys" recformer recommend --user 196 -k 10
