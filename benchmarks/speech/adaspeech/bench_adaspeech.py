"""AdaSpeech benchmark: adaptation modes on each target, plus quality vs number of sentences.

For every adaptation target of the corpus: AdaSpeech (CLN + speaker embedding), speaker
embedding only, whole decoder, AdaSpeech without CLN, and no adaptation (nearest source speaker
by resemblyzer similarity), scored on the target's held-out sentences against its real
recordings (MCD-DTW, resemblyzer cosine, pocketsphinx WER); the vocoded ground truth is the
ceiling. Results accumulate in results.json (a rerun skips finished cells), then results.md.

    python benchmarks/speech/adaspeech/bench_adaspeech.py --corpus runs/adaspeech/corpus \
        --model runs/adaspeech/source/model --out benchmarks/speech/adaspeech
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from seqverse.speech import audio as A
from seqverse.speech.adaspeech import evaluate as E
from seqverse.speech.adaspeech.corpus import load_corpus
from seqverse.speech.adaspeech.model import AdaSpeech
from seqverse.speech.adaspeech.train import Voice, adapt, load_items, source_voice

MODES = ("adaspeech", "speaker", "decoder", "nocln")


def nearest_source(model, corpus, utts, target_items) -> str:
    tgt = np.mean([E.speaker_embedding(A.load_wav(Path(corpus) / u["wav"])) for u in target_items[:5]], 0)
    best, name = -2.0, None
    for spk in model.config.speakers:
        su = [u for u in utts if u["speaker"] == spk][:5]
        e = np.mean([E.speaker_embedding(A.load_wav(Path(corpus) / u["wav"])) for u in su], 0)
        cos = float(e @ tgt / (np.linalg.norm(e) * np.linalg.norm(tgt)))
        if cos > best:
            best, name = cos, spk
    return name


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus")
    ap.add_argument("--model", default="runs/adaspeech/source/model")
    ap.add_argument("--out", default="benchmarks/speech/adaspeech")
    ap.add_argument("--voices", default="runs/adaspeech/bench/voices")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--n-test", type=int, default=10, help="held-out sentences per target (the corpus has 10)")
    ap.add_argument("--targets", nargs="*", default=None)
    ap.add_argument("--curve-target", default="slt")
    ap.add_argument("--curve", nargs="*", type=int, default=[1, 5, 10])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only-ceiling", action="store_true", help="score only the vocoded ground truth (needs no model)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    if not (Path(args.corpus) / "metadata.jsonl").is_file():  # deterministic: same speakers and sentences
        from seqverse.speech.adaspeech.corpus import build_corpus

        build_corpus(args.corpus)
    if not Path(args.model).is_dir():
        from seqverse.speech.adaspeech.api import SOURCE_DIR

        print(f"{args.model} not found: using the shipped source model {SOURCE_DIR}", flush=True)
        args.model = str(SOURCE_DIR)
    model = None if args.only_ceiling else AdaSpeech.from_pretrained(args.model)
    utts, summary = load_corpus(args.corpus)
    targets = args.targets or [s["name"] for s in summary["speakers"] if s["role"] == "target"]
    vdir = Path(args.voices)
    vdir.mkdir(parents=True, exist_ok=True)

    def save():
        res_path.write_text(json.dumps(results, indent=1))
        write_table(results, out / "results.md")

    def cell(key, fn):
        if key in results:
            return results[key]
        t = time.time()
        results[key] = {**fn(), "seconds": round(time.time() - t, 1)}
        print(key, results[key], flush=True)
        save()
        return results[key]

    for tgt in targets:
        adapt_u = [u for u in utts if u["speaker"] == tgt and u["split"] == "adapt"]
        test_u = [u for u in utts if u["speaker"] == tgt and u["split"] == "test"][: args.n_test]
        tests = [(str(Path(args.corpus) / u["wav"]), u["text"]) for u in test_u]
        items = load_items(args.corpus, adapt_u)
        cell(f"{tgt}/ceiling", lambda tests=tests: {**E.evaluate_ceiling(tests), "params": 0})
        if args.only_ceiling:
            continue

        def run(mode, n=None, tgt=tgt, items=items, tests=tests):
            n = n or len(items)
            path = vdir / f"{tgt}_{mode}_{n}.safetensors"
            if path.is_file():
                v = Voice.load(path)
            else:
                v = adapt(model, items[:n], mode=mode, steps=args.steps)
                v.save(path)
            return {**E.evaluate_voice(model, v, tests), "params": v.n_adapted, "stored": v.deploy(model).n_adapted,
                    "final_loss": v.meta.get("final_loss")}

        for mode in MODES:
            cell(f"{tgt}/{mode}", lambda mode=mode: run(mode))

        def nearest(tgt=tgt, items=items, tests=tests, adapt_u=adapt_u):
            name = nearest_source(model, args.corpus, utts, adapt_u)
            ref = Voice.load(vdir / f"{tgt}_adaspeech_{len(items)}.safetensors").utterance
            return {**E.evaluate_voice(model, source_voice(model, name, ref), tests), "params": 0, "source": name}

        cell(f"{tgt}/nearest", nearest)
        if tgt == args.curve_target:
            for n in args.curve:
                cell(f"{tgt}/curve_{n}", lambda n=n: run("adaspeech", n))
    save()


def write_table(results: dict, path: Path) -> None:
    names = {"ceiling": "vocoded ground truth (ceiling)", "adaspeech": "AdaSpeech (CLN + speaker emb.)",
             "speaker": "(a) speaker embedding only", "decoder": "(b) whole decoder fine-tuned",
             "nocln": "(c) AdaSpeech without CLN", "nearest": "(d) no adaptation: nearest source speaker"}
    lines = ["| target | system | fine-tuned params | stored per voice | MCD (dB) ↓ | speaker sim. ↑ | WER ↓ |",
             "|---|---|---:|---:|---:|---:|---:|"]
    targets = sorted({k.split("/")[0] for k in results})
    for t in targets:
        for key, label in names.items():
            r = results.get(f"{t}/{key}")
            if r:
                extra = f" ({r['source']})" if "source" in r else ""
                lines.append(f"| {t} | {label}{extra} | {r['params']} | {r.get('stored', r['params'])} | {r['mcd']:.2f} "
                             f"| {r['similarity']:.3f} | {100 * r['wer']:.1f}% |")
    curve = sorted((int(k.split("_")[-1]), k) for k in results if "/curve_" in k)
    if curve:
        t = curve[0][1].split("/")[0]
        lines += ["", f"Quality against adaptation sentences (AdaSpeech, target {t}):", "",
                  "| sentences | MCD (dB) ↓ | speaker sim. ↑ | WER ↓ |", "|---:|---:|---:|---:|"]
        full = results.get(f"{t}/adaspeech")
        pts = [(n, results[k]) for n, k in curve] + ([(20, full)] if full else [])
        for n, r in pts:
            lines.append(f"| {n} | {r['mcd']:.2f} | {r['similarity']:.3f} | {100 * r['wer']:.1f}% |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
