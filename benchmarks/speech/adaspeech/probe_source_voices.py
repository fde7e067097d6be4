"""How close can a synthetic source speaker get to an adaptation target? (a probe, before a corpus rebuild)

Synthesises the target's first adaptation sentences with each candidate speaker (the corpus
builder's own synthesisers and vocal tract length perturbation) and prints the resemblyzer cosine
between the candidate's and the target's mean speaker embeddings, plus pocketsphinx WER. A
candidate is ENGINE:VOICE:PITCH:RATE:FORMANT as in ``corpus.Speaker`` (pitch 0 = the voice's own).

    python benchmarks/speech/adaspeech/probe_source_voices.py --target slt \
        flite:rms:0:1.0:1.2 flite:rms:0:1.0:1.3 festival:kal_diphone:220:1.0:1.25

``--build-corpus DIR`` instead builds the default corpus plus the candidates as extra source
speakers (placed before the targets, so every other speaker keeps its sentences; hard-link an
existing corpus's ``wavs/`` into DIR first and only the new speakers are synthesised).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from seqverse.speech import audio as A
from seqverse.speech.adaspeech import evaluate as E
from seqverse.speech.adaspeech.corpus import Speaker, build_corpus, default_speakers, load_corpus, synthesise


def mean_embedding(wavs) -> np.ndarray:
    e = np.mean([E.speaker_embedding(A.load_wav(p)) for p in wavs], 0)
    return e / np.linalg.norm(e)


def candidate(spec: str) -> Speaker:
    engine, voice, pitch, rate, formant = spec.split(":")
    pitch_part = f"{pitch}_" if int(pitch) else ""  # named as corpus.py names its festival/flite speakers
    name = f"{voice.split('_')[0]}_{pitch_part}{float(rate):g}_v{float(formant):g}"
    return Speaker(name, engine, voice, int(pitch), float(rate), formant=float(formant))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidates", nargs="+", help="ENGINE:VOICE:PITCH:RATE:FORMANT")
    ap.add_argument("--corpus", default="runs/adaspeech/corpus3")
    ap.add_argument("--target", default="slt")
    ap.add_argument("--sentences", type=int, default=5)
    ap.add_argument("--reference", nargs="*", default=["rms_0.95_v1.2"], help="corpus speakers to score alongside")
    ap.add_argument("--build-corpus", metavar="DIR", help="build the default corpus plus the candidates into DIR")
    args = ap.parse_args(argv)
    if args.build_corpus:
        speakers = default_speakers()
        first_target = next(i for i, s in enumerate(speakers) if s.role == "target")
        extra = [candidate(spec) for spec in args.candidates]
        build_corpus(args.build_corpus, speakers=speakers[:first_target] + extra + speakers[first_target:])
        return
    utts, _ = load_corpus(args.corpus)
    own = [u for u in utts if u["speaker"] == args.target and u["split"] == "adapt"][: args.sentences]
    target = mean_embedding(Path(args.corpus) / u["wav"] for u in own)
    for name in args.reference:
        wavs = [Path(args.corpus) / u["wav"] for u in utts if u["speaker"] == name][: args.sentences]
        print(f"{name} (corpus speaker): similarity to {args.target} {float(mean_embedding(wavs) @ target):.3f}")
    texts = [u["text"] for u in own]
    with tempfile.TemporaryDirectory() as tmp:
        for k, spec in enumerate(args.candidates):
            spk = candidate(spec)
            items = [(t, Path(tmp) / f"{k}_{i}.wav") for i, t in enumerate(texts)]
            synthesise(spk, items)
            sim = float(mean_embedding(p for _, p in items) @ target)
            wer = E.wer(texts, [E.transcribe(A.load_wav(p)) for _, p in items])
            print(f"{spec}: similarity to {args.target} {sim:.3f}, pocketsphinx WER {100 * wer:.0f}%", flush=True)


if __name__ == "__main__":
    main()
