"""Where the AdaSpeech-vs-whole-decoder gap comes from, on a target's *validation* sentences.

The 20 adaptation utterances of the target are split 15 (fit) / 5 (validation); the benchmark's
held-out test sentences are not used. On the 5 validation sentences it scores (MCD, resemblyzer
similarity, pocketsphinx WER, and the mean absolute frame-to-frame change of the log-mel,
"temporal modulation", as a measure of over-smoothing):

* the vocoded ground truth (the ceiling: is Griffin-Lim the limit?);
* the source model's own speakers, unadapted (can the source model speak intelligibly at all,
  and does it matter which voices taught it: kal vs espeak-ng speakers?);
* the adaptation modes at the benchmark's recipe, fitted on the 15 sentences, with their
  validation mel L1 and the range of the generated CLN scales gamma;
* AdaSpeech from other speaker-embedding inits (a source speaker instead of the mean).

Cells accumulate in ``--out`` (a rerun skips finished ones).

    python benchmarks/speech/adaspeech/diagnose.py --target slt \
        --out benchmarks/speech/adaspeech/diagnosis_slt.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from seqverse.speech.adaspeech import evaluate as E
from seqverse.speech.adaspeech.corpus import load_corpus
from seqverse.speech.adaspeech.model import AdaSpeech
from seqverse.speech.adaspeech.train import AdaptationCache, adapt, load_items, source_voice


def temporal_modulation(mel: np.ndarray) -> float:
    return float(np.abs(np.diff(mel, axis=0)).mean())


@torch.no_grad()
def synth_mel(model, voice, sentence: str) -> np.ndarray:
    """The log-mel that :func:`evaluate.synthesise` would vocode (no Griffin-Lim)."""
    from seqverse.speech.adaspeech import text as T

    m = voice.apply(model)
    ids = torch.tensor([T.phoneme_ids(T.to_phonemes(sentence)[0])])
    out = m(ids, torch.tensor([ids.shape[1]]), voice.speaker[None], utterance=voice.utterance[None])
    return out["mel"][0, : int(out["frame_lengths"][0])].numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus")
    ap.add_argument("--model", default=None, help="source model directory (default: the shipped one)")
    ap.add_argument("--target", default="slt")
    ap.add_argument("--sources", nargs="*", default=["kal_105_1.15", "kal_125_0.9", "es_en-gb-x-rp_f3", "es_en-029_f4"])
    ap.add_argument("--inits", nargs="*", default=["kal_140_1.05", "es_en-gb-x-rp_f3"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", default="runs/adaspeech/diagnosis.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.model is None:
        from seqverse.speech.adaspeech.api import SOURCE_DIR

        args.model = str(SOURCE_DIR)
    model = AdaSpeech.from_pretrained(args.model)
    utts, _ = load_corpus(args.corpus)
    adapt_u = [u for u in utts if u["speaker"] == args.target and u["split"] == "adapt"]
    items = load_items(args.corpus, adapt_u)
    fit, val = items[:15], items[15:]
    tests = [(str(Path(args.corpus) / u["wav"]), u["text"]) for u in adapt_u[15:]]
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.is_file() else {}

    def cell(key, fn):
        if key not in res:
            t = time.time()
            res[key] = {**fn(), "seconds": round(time.time() - t, 1)}
            out.write_text(json.dumps(res, indent=1))
        print(key, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res[key].items()}, flush=True)

    cell("ground truth mel", lambda: {"tmod": float(np.mean([temporal_modulation(it["mel"].numpy()) for it in val]))})
    cell("vocoded ground truth", lambda: E.evaluate_ceiling(tests))

    def scored(voice, m=None):
        mels = [synth_mel(model, voice, t) for _, t in tests]
        r = {**E.evaluate_voice(model, voice, tests), "tmod": float(np.mean([temporal_modulation(x) for x in mels]))}
        if m is not None:
            with torch.no_grad():
                _, vl = AdaptationCache(m, val).loss(m, voice.speaker)
            gam = torch.cat([(1.0 + n.w_gamma(voice.speaker[None])[0]) for n in m.decoder_norms() if hasattr(n, "w_gamma")])
            r.update(val_mel=vl["mel"], gamma_min=float(gam.min()), gamma_max=float(gam.max()))
        return r

    ref = adapt(model, fit, steps=1).utterance  # the target's mean utterance-level vector (not trained)
    for name in args.sources:
        cell(f"source speaker {name} (unadapted)", lambda name=name: scored(source_voice(model, name, ref)))
    for mode in ("adaspeech", "decoder", "speaker"):
        def run(mode=mode):
            v, m = adapt(model, fit, mode=mode, steps=args.steps, return_model=True)
            return {**scored(v, m), "params": v.n_adapted}
        cell(f"{mode} ({args.steps} steps, init mean)", run)
    spk = model.config.speakers
    for name in args.inits:
        def run_init(name=name):
            init = model.speaker_embedding.weight[spk.index(name)].detach().clone()
            v, m = adapt(model, fit, mode="adaspeech", steps=args.steps, init_speaker=init, return_model=True)
            return scored(v, m)
        cell(f"adaspeech ({args.steps} steps, init {name})", run_init)


if __name__ == "__main__":
    main()
