"""Two probes of what limits AdaSpeech's adapted voices (negative results, kept so they can be rerun).

``--probe gv``: a global-variance post-filter (Toda & Tokuda 2007, variance scaling): each bin of a
synthesised log-mel is stretched about its utterance mean so its variance matches the mean
per-utterance variance of the target's 20 adaptation recordings, then vocoded as usual. Scores
the benchmark's saved voices (``--voices``) on the held-out sentences with and without it.

``--probe inference-inputs``: adapts on the decoder inputs inference sees instead of
teacher-forced ones: phoneme-level vectors from the acoustic *predictor* (at the initial speaker
embedding) rather than the acoustic encoder, and predicted pitch and energy. Durations stay the
recordings' (they align the mel target).

    python benchmarks/speech/adaspeech/probe_adaptation.py --probe gv --targets slt kal_high
    python benchmarks/speech/adaspeech/probe_adaptation.py --probe inference-inputs --targets slt kal_high
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from seqverse.speech import audio as A
from seqverse.speech.adaspeech import evaluate as E
from seqverse.speech.adaspeech import train as TR
from seqverse.speech.adaspeech.corpus import load_corpus
from seqverse.speech.adaspeech.model import AdaSpeech, length_regulate


def gv_postfilter(mel: np.ndarray, target_variance: np.ndarray) -> np.ndarray:
    mean = mel.mean(0)
    return mean + (mel - mean) * np.sqrt(target_variance / np.maximum(mel.var(0), 1e-6))


class InferenceInputCache(TR.AdaptationCache):
    """AdaptationCache whose phoneme-level vectors come from the acoustic predictor, as at inference."""

    def __init__(self, model: AdaSpeech, items: list[dict]):
        super().__init__(model, items)
        b, pmask = self.batch, self.pmask
        with torch.no_grad():
            h = model.encode(b["phonemes"], pmask) + self.utterance[:, None, :]
            spk = model.speaker_proj(model.speaker_embedding.weight.mean(0))[None, None]
            pred = model.phoneme_predictor((h + spk).masked_fill(pmask.unsqueeze(-1), 0.0), pmask)
            self.base = h.masked_fill(pmask.unsqueeze(-1), 0.0) + model.phoneme_proj(pred).masked_fill(pmask.unsqueeze(-1), 0.0)
            variance_frames = self.frames - self.frames_no_variance  # length regulation is linear
            self.frames_no_variance, _ = length_regulate(self.base, b["durations"], b["mel"].shape[1])
            self.frames = self.frames_no_variance + variance_frames


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", choices=["gv", "inference-inputs"], required=True)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus3")
    ap.add_argument("--model", default="packages/speech/src/seqverse/speech/adaspeech/assets/source")
    ap.add_argument("--voices", default="runs/adaspeech/bench5/voices", help="the benchmark's saved voices (gv probe)")
    ap.add_argument("--targets", nargs="+", default=["slt", "kal_high"])
    ap.add_argument("--modes", nargs="+", default=["adaspeech", "decoder"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = AdaSpeech.from_pretrained(args.model)
    utts, _ = load_corpus(args.corpus)
    results = {}
    for tgt in args.targets:
        adapt_u = [u for u in utts if u["speaker"] == tgt and u["split"] == "adapt"]
        test_u = [u for u in utts if u["speaker"] == tgt and u["split"] == "test"]
        if args.probe == "gv":  # what each probe reads, once per target
            real = [A.load_wav(Path(args.corpus) / u["wav"]) for u in test_u]
            target_var = np.mean([A.log_mel(A.load_wav(Path(args.corpus) / u["wav"])).var(0) for u in adapt_u], 0)
        else:
            items = TR.load_items(args.corpus, adapt_u)
            tests = [(str(Path(args.corpus) / u["wav"]), u["text"]) for u in test_u]
        for mode in args.modes:
            if args.probe == "gv":
                voice = TR.Voice.load(Path(args.voices) / f"{tgt}_{mode}_{len(adapt_u)}.safetensors")
                applied = voice.apply(model)
                mels = [E.synthesise(applied, E._Bare(voice), u["text"])[1] for u in test_u]
                for name, post in (("plain", lambda m: m), ("gv", lambda m, v=target_var: gv_postfilter(m, v))):
                    pairs = [(r, A.griffin_lim(post(m)), u["text"]) for r, m, u in zip(real, mels, test_u)]
                    results[f"{tgt}/{mode}/{name}"] = E.score(pairs)
            else:
                plain_cache = TR.AdaptationCache
                try:
                    TR.AdaptationCache = InferenceInputCache  # adapt() builds its cache from this name
                    voice = TR.adapt(model, items, mode=mode, steps=60, predicted_variance=True)
                finally:
                    TR.AdaptationCache = plain_cache
                results[f"{tgt}/{mode}/inference-inputs"] = E.evaluate_voice(model, voice, tests)
            for k, v in results.items():
                if k.startswith(f"{tgt}/{mode}/"):
                    print(k, {m: round(x, 4) for m, x in v.items()}, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
