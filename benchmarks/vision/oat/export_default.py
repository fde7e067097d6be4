"""Copy a trained synthetic OAT run into the package as the embedded default (fp16) with its model card.

    python benchmarks/vision/oat/export_default.py runs/oat/synth_oat
    python benchmarks/vision/oat/export_default.py runs/oat/synth_oat_big --continued-from runs/oat/synth_oat
    (--continued-from also takes an exported checkpoint folder, e.g. a copy of the previous embedded default)

The card records the data, the command, the seed, validation metrics from the run's metrics.jsonl and,
when benchmarks/vision/oat/results/synthetic.json exists, the held-out test metrics.
"""

import json
import sys
from pathlib import Path

from seqverse.vision.oat.model import OAT

run = Path(sys.argv[1])
first = Path(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--continued-from" else None
dest = Path(__file__).resolve().parents[3] / "packages/vision/src/seqverse/vision/oat/assets/oat-synthetic"
model = OAT.from_pretrained(run / "best")
meta = json.loads((run / "best" / "config.json").read_text())
model.save_pretrained(dest, half=True, extra={"best_epoch": meta.get("best_epoch"),
                                              "best_valid_delta": meta.get("best_valid_delta")})
n_params = sum(p.numel() for p in model.parameters())
size_mb = (dest / "model.safetensors").stat().st_size / 1e6
evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "valid_delta" in line]
stage1 = ""
if first is not None:
    # stage 1 is a run folder (metrics.jsonl + best/) or an exported checkpoint such as the previous
    # embedded default, whose config.json carries best_epoch and best_valid_delta
    if (first / "metrics.jsonl").is_file():
        n1 = sum('"valid_delta"' in line for line in (first / "metrics.jsonl").read_text().splitlines())
        meta1 = json.loads((first / "best" / "config.json").read_text())
        of = f" of {n1}"
    else:
        meta1, of = json.loads((first / "config.json").read_text()), ""
    stage1 = (f"  Stage 1: `{first}` on the 40-layout corpus above, selected epoch {meta1.get('best_epoch')}{of} "
              f"(validation delta {meta1.get('best_valid_delta', float('nan')):.3f}). Stage 2 (this checkpoint): "
              "continued from stage 1's weights (`oat train --init`) on "
              "the same corpus with more training data only (`make-displays --extra-train-people 4 "
              "--extra-train-targets 8`: 415 training displays x 8 simulated people instead of 191 x 4, from a "
              "second random stream; validation and test files byte-identical).\n")
best = min(evals, key=lambda r: r["valid_delta"])
test = ""
res = Path(__file__).resolve().parent / "results" / "synthetic.json"
if res.is_file():
    sets = json.loads(res.read_text())["sets"]
    for split, rows in sets.items():
        r = next(x for x in rows if x["system"] == "OAT")
        test += (f"| {split} | greedy | {r['sequence_score']:.3f} | {r.get('sequence_score_sampled', float('nan')):.3f} "
                 f"| {r['behavioural_delta']:.3f} | {r['multimatch']:.3f} |\n")
        for r in rows:
            if "chosen on validation" in r["system"]:
                test += (f"| {split} | {r['system'][5:-1]} | {r['sequence_score']:.3f} | | {r['behavioural_delta']:.3f} "
                         f"| {r['multimatch']:.3f} |\n")
c = model.config
card = f"""# OAT embedded default: `oat-synthetic`

Object-level attention transformer (Fang et al., ECCV 2024) trained on **synthetic** search displays
with a **simulated** Guided-Search-style searcher (`seqverse-vision oat make-displays`, seed 0). It
contains no human data. It predicts object-level scanpaths for displays whose objects have images.

- Size: {n_params:,} parameters, stored fp16 ({size_mb:.1f} MB). Compact configuration d_model={c.d_model},
  {c.n_heads} heads, {c.n_encoder_layers}+{c.n_decoder_layers} layers, feed-forward {c.dim_feedforward}, crops
  {c.crop_height}x{c.crop_width}. The paper's size (d_model 512, 4+4 layers, 18.0M parameters) would be 36 MB
  in fp16, over the 10 MB limit for embedded checkpoints, and could not be trained on this machine's
  shared CPUs in the time available; `OATConfig()` defaults to it and `oat train` trains it.
- Data: 40 layouts (grids 8x3, 6x4, 7x4 and irregular), 60 procedural products, 8 targets per layout,
  4 simulated scanpaths per display; train = layouts 0-27 with targets outside products 50-59;
  validation = layouts 28-31; held out: layouts 32-39 (test_layout) and target products 50-59 (test_target).
- Training: teacher-forced cross-entropy, Adam lr 1e-4, gradient clip 1.0, 4 displays (16 scanpaths)
  per batch, seed 0, the epoch with the lowest validation behavioural delta (patience 100); selected epoch
  {meta.get('best_epoch')} of {len(evals)} (validation delta {best['valid_delta']:.3f}, sequence score
  {best['valid_sequence_score']:.3f}).
{stage1}- Rebuild: `bash benchmarks/vision/oat/rebuild_default.sh` (make-displays, train, this export).
- Decoding: `benchmarks/vision/oat/results/decoding_synthetic.json` records the rule chosen on validation
  (greedy, mean of draws, minimum Bayes risk, likelihood) and the benchmark's "chosen on validation" row.

Held-out test (benchmarks/vision/oat/results/synthetic.md; greedy sequence score, mean over 20 sampled
scanpaths, behavioural delta, MultiMatch as the official code: object centres vs the simulated people's fixations):

| split | decoding | sequence score | sampled | delta | MultiMatch |
|---|---|---|---|---|---|
{test}
"""
(dest / "MODEL_CARD.md").write_text(card)
print(f"wrote {dest} ({size_mb:.1f} MB, {n_params:,} parameters)")
