"""Copy the benchmark's HyenaDNA checkpoint into the package as the embedded default, with a model card.

    .venv/bin/python benchmarks/genomics/hyenadna/make_asset.py --model runs/hyenadna/pretrain/hyena
"""

import argparse
import json
import shutil
from pathlib import Path

ASSET = Path(__file__).resolve().parents[3] / "packages/genomics/src/seqverse/genomics/hyenadna/assets/hyenadna-tiny-hs11286"
RESULTS = Path(__file__).parent / "results"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="runs/hyenadna/pretrain/hyena")
    args = ap.parse_args()
    src = Path(args.model)
    ASSET.mkdir(parents=True, exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    config["gradient_checkpointing"] = False
    (ASSET / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copy(src / "model.safetensors", ASSET / "model.safetensors")
    state = json.loads((src / "trainer_state.json").read_text())
    heldout = json.loads((RESULTS / "heldout.json").read_text())
    rows = "\n".join(f"| {r['model']} | {r['val_bits_per_base']:.4f} | {r['test_bits_per_base']:.4f} |" for r in heldout["rows"])
    pre = state["pretrain"]
    card = f"""# hyenadna-tiny-hs11286

HyenaDNA (Nguyen et al. 2023) next-nucleotide language model, official Hugging Face layout
(tiny-1k sizes: {config['n_layer']} layers, d_model {config['d_model']}, d_inner {config['d_inner']}, context
{config['max_seq_len']}; emb_dim {config['emb_dim']}: every Fourier band, see the genomics README).

- **Data**: chromosome CP003200.1 of *Klebsiella pneumoniae* HS11286 (Debian `kleborate-examples`,
  `Klebs_HS11286.fna.xz`), first 78% for training (both strands), 78–80% for validation curves.
  The last 20% is held out; no other Klebsiella genome was used.
- **Command**: `nice -n 5 .venv/bin/python benchmarks/genomics/hyenadna/pretrain_bench.py --out runs/hyenadna/pretrain --steps {pre['steps']} --threads 1`
  (trains this model and the same-size Transformer on identical batches), then `make_asset.py`.
- **Recipe**: {state['step']} steps (of a {pre['steps']}-step schedule; stopped there for CPU time, resumable), {pre['tokens_per_step']} tokens per step ({state['tokens']:,} tokens), sequence-length warm-up
  {' -> '.join(str(n) for _, n in pre['stages'])} over the first {pre['warmup_fraction']:.0%} of steps, AdamW (lr {pre['lr']}, cosine to
  {pre['min_lr_ratio']}x, weight decay {pre['weight_decay']}), seed {pre['seed']}; {state['elapsed'] / 60:.0f} CPU-thread minutes.
- **Metrics** (bits per base; `benchmarks/genomics/hyenadna/heldout_bench.py`):

| model | validation | held-out 20% |
| --- | ---: | ---: |
{rows}
"""
    (ASSET / "README.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
