"""Write the embedded default (fp16) with its model card from a merged stage-2 directory and an evaluate JSON.

    python benchmarks/genomics/prollama/export_embedded.py runs/prollama/general runs/prollama/eval.json \
        [runs/prollama/valid.json]

The optional third file is the selection run (``evaluate --split valid``) that chose this model.
"""

import json
import sys
from pathlib import Path

from seqverse.genomics.prollama.export import export_embedded
from seqverse.genomics.prollama.tasks import ASSETS, PRIOR_FILE, stored_decoding

ROUND = 2  # the README round whose rule chose the model's chain (round 4 chose its prediction decoding)


def card(run: Path, evaluation: dict, validation: dict | None = None) -> str:
    base = json.loads((Path("runs/prollama/base-en") / "base_card.json").read_text())
    s1 = json.loads((run / "stage1" / "stage_card.json").read_text())
    s2 = json.loads((run / "stage2" / "stage_card.json").read_text())
    return f"""# ProLLaMA-tiny (seqverse embedded default)

A general LLM made here (LLaMA architecture, byte-level BPE 2,048, pre-trained on Debian English text:
GCIDE, WordNet glosses, fortunes), then ProLLaMA's two LoRA stages (merged), fp16 safetensors.

- base: {base['params']:,} parameters, {base['steps_done']} steps x {base['batch_size']} x {base['config']['block_size']} tokens,
  lr {base['lr']} cosine, seed {base['seed']}, English valid loss {base['valid_loss']:.3f}
- stage 1 (continual pre-training, UniProt train split `Seq=<...>`, packed 256-token blocks): LoRA r={s1['recipe']['r']},
  alpha={s1['recipe']['alpha']}, dropout {s1['recipe']['dropout']}, embed_tokens + lm_head in full, lr {s1['recipe']['lr']} cosine,
  warm-up {s1['recipe']['warmup']}, {s1['steps_done']} steps x {s1['batch_size']} blocks, seed {s1['seed']}, valid {s1.get('valid')}
- stage 2 (instruction tuning, both superfamily tasks, answer-only loss): LoRA r={s2['recipe']['r']}, alpha={s2['recipe']['alpha']},
  lr {s2['recipe']['lr']} cosine, warm-up {s2['recipe']['warmup']}, {s2['steps_done']} steps x {s2['batch_size']}, seed {s2['seed']},
  {s2['records']} instruction records{stage2_extras(s2)}
- superfamilies: {', '.join(s2['superfamilies'])}
{prediction_decoding(run)}- data: Debian mmseqs2-examples UniProt (20,000), labels by hmmsearch E <= 1e-5 (hmmer-examples Pfam HMMs,
  hmmbuild of python-biopython-doc Pfam seeds, mmseqs2/mafft cluster families); splits by 50%-identity components

## Metrics (`seqverse-genomics prollama evaluate`, seed {evaluation['seed']}, n={evaluation['n']} per family)

{evaluation['markdown']}
{selection(validation)}
## Rebuild

    bash benchmarks/genomics/prollama/rebuild_embedded.sh
"""


def stage2_extras(s2: dict) -> str:
    """The seqverse departures from the official stage 2 that this model used (README, rounds 3-4)."""
    extras = []
    if s2.get("balanced"):
        extras.append(f"superfamilies balanced (each repeated round((largest / its size) ** {s2['balanced']:g}) times)")
    if s2.get("record_mean"):
        extras.append("loss = mean over records of each record's mean answer-token loss (the official: mean over tokens)")
    return "".join(f";\n  {e}" for e in extras)


def prediction_decoding(run: Path) -> str:
    decoding = stored_decoding(run / "stage2")
    prior = run / "stage2" / PRIOR_FILE
    if decoding == "argmax":
        return "- prediction: the paper's argmax over the known superfamilies\n"
    if decoding == "generative":
        return ("- prediction: the generation view by Bayes' rule, uniform prior (prediction.json; chosen on validation "
                "accuracy, README round 5)\n")
    note = json.loads(prior.read_text())
    corrected = (f"the answer divided by the model's mean answer distribution over {note['domains']} training domains "
                 f"(answer_prior.json; chosen on {note['chosen_on']}, README rounds 4-5)")
    if decoding == "combined":
        return f"- prediction: argmax of the generation view's log posterior plus that of {corrected}\n"
    return f"- prediction: argmax of {corrected}\n"


def selection(validation: dict | None) -> str:
    if not validation:
        return ""
    return f"""
## Selection run (validation clusters only, seed {validation['seed']}, n={validation['n']} per family)

Chosen by the rule written in packages/genomics/README.md (ProLLaMA, round {ROUND}) before these numbers:

{validation['markdown']}
"""


def main():
    run, evaluation = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    validation = json.loads(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else None
    print(json.dumps(export_embedded(run / "stage2", ASSETS, card(run, evaluation, validation))))


if __name__ == "__main__":
    main()
