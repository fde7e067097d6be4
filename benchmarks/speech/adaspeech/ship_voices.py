"""Ship a source model: export it as float16, adapt the shipped voices against the exported weights.

The voices must be adapted against the weights users load (float16 rounded, cast to float32), not
the float32 training weights, so this runs after the export. Each voice is stored deployed (every
CLN's gamma and beta plus E^s). Then slt is scored on its held-out sentences as a check against
the benchmark.

    OMP_NUM_THREADS=1 python benchmarks/speech/adaspeech/ship_voices.py --corpus runs/adaspeech/corpus27 \
        --model runs/adaspeech/source27/model --out runs/adaspeech/ship27
    cp runs/adaspeech/ship27/source/*.{json,safetensors} packages/speech/src/seqverse/speech/adaspeech/assets/source/
    cp runs/adaspeech/ship27/voices/*.safetensors packages/speech/src/seqverse/speech/adaspeech/assets/voices/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_adaspeech import target_data  # noqa: E402  (the benchmark beside this script)


def main(argv=None):
    from seqverse.speech.adaspeech import evaluate as E
    from seqverse.speech.adaspeech.api import export_model
    from seqverse.speech.adaspeech.corpus import load_corpus
    from seqverse.speech.adaspeech.model import AdaSpeech
    from seqverse.speech.adaspeech.train import Voice, adapt

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus27")
    ap.add_argument("--model", default="runs/adaspeech/source27/model", help="trained model directory (float32)")
    ap.add_argument("--out", default="runs/adaspeech/ship27", help="gets source/ (exported) and voices/")
    ap.add_argument("--voices", nargs="*", default=["slt", "joe", "clb"], help="targets to adapt and ship")
    ap.add_argument("--steps", type=int, default=60, help="adaptation steps (the benchmark's)")
    ap.add_argument("--check", default="slt", help="voice scored on its 40 held-out sentences")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    if not (out / "source" / "model.safetensors").is_file():
        export_model(args.model, args.corpus, out / "source", half=True)
    model = AdaSpeech.from_pretrained(out / "source")
    utts, _ = load_corpus(args.corpus)
    for tgt in args.voices:
        path = out / "voices" / f"{tgt}.safetensors"
        if not path.is_file():
            _, _, items = target_data(args.corpus, utts, tgt, 0)
            adapt(model, items, mode="adaspeech", steps=args.steps).deploy(model).save(path)
    if args.check:
        _, tests, _ = target_data(args.corpus, utts, args.check, 40)
        r = E.evaluate_voice(model, Voice.load(out / "voices" / f"{args.check}.safetensors"), tests, with_wer=True)
        check = {args.check: {k: r[k] for k in ("mcd", "similarity", "wer")}}
        (out / "check.json").write_text(json.dumps(check, indent=1))
        print(check)


if __name__ == "__main__":
    main()
