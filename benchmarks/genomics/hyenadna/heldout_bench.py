"""Held-out bits per base on the last 20% of the HS11286 chromosome: HyenaDNA, the same-size
Transformer (both from ``pretrain_bench.py``) and the best order-k Markov chain.

The Markov order k and smoothing are chosen on the validation slice [0.78, 0.80) with counts from
[0, 0.78) (the neural models' training part); the chosen model is then refit on the whole 80%
(both strands) and scored on [0.80, 1.0). The neural models score every base with the windowed
scorer (context 1024, stride 512: each base after the first window sees >= 512 bases before it).

    nice -n 5 .venv/bin/python benchmarks/genomics/hyenadna/heldout_bench.py --models runs/hyenadna/pretrain
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from seqverse.genomics.hyenadna.baselines import MarkovModel, select_markov
from seqverse.genomics.hyenadna.data import load_genome
from seqverse.genomics.hyenadna.model import HyenaDNAForCausalLM
from seqverse.genomics.hyenadna.train import bits_per_base

GENOME = "/usr/share/doc/kleborate/examples/data/Klebs_HS11286.fna.xz"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="runs/hyenadna/pretrain")
    ap.add_argument("--out", default="benchmarks/genomics/hyenadna/results")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    part = {name: load_genome([GENOME], largest_only=True, fraction=f)
            for name, f in {"train": (0, 0.78), "val": (0.78, 0.8), "train80": (0, 0.8), "test": (0.8, 1.0)}.items()}
    rows = []
    t = time.time()
    chosen, table = select_markov(part["train"].ids, part["val"].ids)
    final = MarkovModel(chosen.k, chosen.alpha).fit(part["train80"].ids)
    rows.append({"model": f"Markov order {chosen.k} (alpha {chosen.alpha}, chosen on validation)", "parameters": int(4 ** (chosen.k + 1)),
                 "train_steps": None, "val_bits_per_base": min(r["val_bits_per_base"] for r in table),
                 "test_bits_per_base": final.bits_per_base(part["test"].ids), "seconds": round(time.time() - t, 1)})
    print(json.dumps(rows[-1]), flush=True)
    for name in ("hyena", "attention"):
        d = Path(args.models) / name
        t = time.time()
        model = HyenaDNAForCausalLM.from_pretrained(d)
        state = json.loads((d / "trainer_state.json").read_text())
        label = "HyenaDNA" if name == "hyena" else "Transformer (same parameter count)"
        rows.append({"model": label, "parameters": model.num_parameters, "train_steps": state["step"], "train_tokens": state["tokens"],
                     "val_bits_per_base": bits_per_base(model, part["val"]), "test_bits_per_base": bits_per_base(model, part["test"]),
                     "seconds": round(time.time() - t, 1)})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"genome": GENOME, "split": {"train": "[0, 0.78)", "validation": "[0.78, 0.80)", "test": "[0.80, 1.0)"},
              "rows": rows, "markov_validation": table}
    (out / "heldout.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| model | parameters | steps | validation bits/base | held-out 20% bits/base |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['model']} | {r['parameters']:,} | {r['train_steps'] or ''} | {r['val_bits_per_base']:.4f} | {r['test_bits_per_base']:.4f} |" for r in rows]
    (out / "heldout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
