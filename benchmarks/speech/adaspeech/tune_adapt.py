"""Tune each adaptation mode's recipe (lr, steps) on a validation split of the adaptation sentences.

For every target, the 20 adaptation utterances are split 15 (fit) / 5 (validation); the held-out
test sentences of the benchmark are never used. Each mode is fitted with each learning rate and
scored at several step counts by the teacher-forced mel L1 on the 5 validation utterances, once
with the recordings' pitch/energy and once with the frozen predictors' (as at inference).
Results go to ``--out`` (JSON), the best (lr, steps) per mode is printed.

    python benchmarks/speech/adaspeech/tune_adapt.py --corpus runs/adaspeech/corpus \
        --model runs/adaspeech/source/model --out runs/adaspeech/tune.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn

from seqverse.speech.adaspeech.corpus import load_corpus
from seqverse.speech.adaspeech.model import AdaSpeech
from seqverse.speech.adaspeech.train import AdaptationCache, _convert_nocln, adapted_parameters, load_items


def fit_curve(model, fit, val, mode, lr, checkpoints, spk_lr=1e-2, batch_size=10, seed=0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(False)
    speaker = nn.Parameter(model.speaker_embedding.weight.mean(0).detach().clone())
    if mode == "nocln":
        _convert_nocln(m, speaker.detach())
    params = adapted_parameters(m, mode)
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam([{"params": [speaker], "lr": spk_lr}, {"params": list(params.values()), "lr": lr}])
    cache, vcache = AdaptationCache(m, fit), AdaptationCache(m, val)
    out = {}
    n = len(fit)
    for step in range(1, max(checkpoints) + 1):
        m.train()
        rows = None if n <= batch_size else torch.randperm(n, generator=gen)[:batch_size]
        total, _ = cache.loss(m, speaker, rows)
        opt.zero_grad()
        total.backward()
        opt.step()
        if step in checkpoints:
            m.eval()
            with torch.no_grad():
                _, tf = vcache.loss(m, speaker)
                _, pv = vcache.loss(m, speaker, predicted_variance=True)
                _, tr = cache.loss(m, speaker)
            out[step] = {"val_mel": tf["mel"], "val_mel_predvar": pv["mel"], "fit_mel": tr["mel"],
                         "val_pitch": tf["pitch"]}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus")
    ap.add_argument("--model", default="runs/adaspeech/source/model")
    ap.add_argument("--out", default="runs/adaspeech/tune.json")
    ap.add_argument("--targets", nargs="*", default=None)
    ap.add_argument("--modes", nargs="*", default=["adaspeech", "speaker", "decoder", "nocln"])
    ap.add_argument("--checkpoints", nargs="*", type=int, default=[60, 150, 300, 600])
    ap.add_argument("--lrs", nargs="*", default=[], metavar="MODE=LR,LR",
                    help="override a mode's learning-rate grid, e.g. decoder=3e-4,1e-3")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grids = {"adaspeech": [3e-3, 1e-2, 3e-2], "speaker": [1e-2], "decoder": [1e-4, 3e-4, 1e-3], "nocln": [3e-3, 1e-2, 3e-2]}
    for spec in args.lrs:
        mode, lrs = spec.split("=")
        grids[mode] = [float(x) for x in lrs.split(",")]
    model = AdaSpeech.from_pretrained(args.model)
    utts, summary = load_corpus(args.corpus)
    targets = args.targets or [s["name"] for s in summary["speakers"] if s["role"] == "target"]
    path = Path(args.out)
    res = json.loads(path.read_text()) if path.is_file() else {}
    for tgt in targets:
        items = load_items(args.corpus, [u for u in utts if u["speaker"] == tgt and u["split"] == "adapt"])
        fit, val = items[:15], items[15:]
        for mode in args.modes:
            for lr in grids[mode]:
                key = f"{tgt}/{mode}/{lr:g}"
                if key in res:
                    continue
                t = time.time()
                res[key] = fit_curve(model, fit, val, mode, lr, set(args.checkpoints))
                print(key, f"{time.time() - t:.0f}s", {s: round(v["val_mel"], 4) for s, v in res[key].items()},
                      "predvar", {s: round(v["val_mel_predvar"], 4) for s, v in res[key].items()}, flush=True)
                path.write_text(json.dumps(res, indent=1))
    for tgt in targets:
        for mode in args.modes:
            cands = [(v["val_mel"], s, k.split("/")[-1]) for k, r in res.items() if k.startswith(f"{tgt}/{mode}/")
                     for s, v in r.items()]
            if cands:
                best = min(cands)
                print(f"best {tgt} {mode}: lr {best[2]} steps {best[1]} val mel L1 {best[0]:.4f}")


if __name__ == "__main__":
    main()
