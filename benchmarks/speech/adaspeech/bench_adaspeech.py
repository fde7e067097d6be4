"""AdaSpeech benchmark: adaptation modes on each target, with bootstrap intervals and the gap.

For every adaptation target of the corpus: AdaSpeech (CLN + speaker embedding), speaker
embedding only, whole decoder, AdaSpeech without CLN, and no adaptation (nearest source speaker
by resemblyzer similarity), scored on the target's held-out sentences (40 in the extended corpus)
against its real recordings: MCD-DTW, resemblyzer cosine, pocketsphinx WER (skipped for targets in
corpus.WER_EXEMPT_TARGETS, whose vocoded truth pocketsphinx cannot read); the vocoded ground truth
is the ceiling. Every number gets a 95% percentile bootstrap interval over sentences, and the
AdaSpeech-vs-whole-decoder gap a paired one, also stated as a fraction of the E^s-only -> whole
decoder range. Cells accumulate in results.json (a rerun skips finished cells; the core cells of
every target come before the ablations), then results.md.

    python benchmarks/speech/adaspeech/bench_adaspeech.py --corpus runs/adaspeech/corpus27 \
        --model runs/adaspeech/source27/model --out benchmarks/speech/adaspeech/issue27
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
from seqverse.speech.adaspeech.corpus import WER_EXEMPT_TARGETS, load_corpus
from seqverse.speech.adaspeech.model import AdaSpeech
from seqverse.speech.adaspeech.train import Voice, adapt, load_items, source_voice

MODES = ("adaspeech", "speaker", "decoder", "nocln")


def nearest_source(model, corpus, utts, target_items) -> str:
    tgt = np.mean([E.speaker_embedding(A.load_wav(Path(corpus) / u["wav"])) for u in target_items[:5]], 0)
    best, name = -2.0, None
    for spk in model.config.speakers:
        su = [u for u in utts if u["speaker"] == spk][:5]
        if not su:  # a speaker of another corpus
            continue
        e = np.mean([E.speaker_embedding(A.load_wav(Path(corpus) / u["wav"])) for u in su], 0)
        cos = float(e @ tgt / (np.linalg.norm(e) * np.linalg.norm(tgt)))
        if cos > best:
            best, name = cos, spk
    return name


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus", help="corpus directory (built when missing)")
    ap.add_argument("--model", default="runs/adaspeech/source/model", help="source model (default: shipped one if absent)")
    ap.add_argument("--out", default="benchmarks/speech/adaspeech", help="where results.json / results.md go")
    ap.add_argument("--voices", default="runs/adaspeech/bench/voices", help="adapted voice files (reused when present)")
    ap.add_argument("--steps", type=int, default=60, help="adaptation steps per voice")
    ap.add_argument("--n-test", type=int, default=40, help="held-out sentences per target (at most the corpus's)")
    ap.add_argument("--targets", nargs="*", default=None, help="targets (default: all of the corpus)")
    ap.add_argument("--core-only", action="store_true", help="only ceiling, AdaSpeech, E^s-only, whole decoder")
    ap.add_argument("--curve-target", default="slt", help="target of the sentence-count curve")
    ap.add_argument("--curve", nargs="*", type=int, default=[], help="adaptation sentence counts for the curve")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only-ceiling", action="store_true", help="score only the vocoded ground truth (needs no model)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    if not (Path(args.corpus) / "metadata.jsonl").is_file():  # deterministic: same speakers and sentences
        from seqverse.speech.adaspeech.corpus import build_corpus, default_speakers, missing_engines

        extended = not missing_engines(default_speakers(extended=True))  # contrib/non-free voices installed
        build_corpus(args.corpus, test_sentences=40, speakers=default_speakers(extended=extended))
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

    def run(tgt, mode, items, tests, n=None):
        n = n or len(items)
        path = vdir / f"{tgt}_{mode}_{n}.safetensors"
        if path.is_file():
            v = Voice.load(path)
        else:
            v = adapt(model, items[:n], mode=mode, steps=args.steps)
            v.save(path)
        return {**E.evaluate_voice(model, v, tests, with_wer=tgt not in WER_EXEMPT_TARGETS), "params": v.n_adapted,
                "stored": v.deploy(model).n_adapted, "final_loss": v.meta.get("final_loss")}

    core, extra = ("adaspeech", "speaker", "decoder"), ("nocln",)
    for phase in ("core", "extra"):
        if phase == "extra" and (args.core_only or args.only_ceiling):
            break
        for tgt in targets:
            adapt_u, tests, items = target_data(args.corpus, utts, tgt, args.n_test)
            if phase == "core":
                cell(f"{tgt}/ceiling", lambda tests=tests, tgt=tgt: {
                    **E.evaluate_ceiling(tests, with_wer=tgt not in WER_EXEMPT_TARGETS), "params": 0})
                if args.only_ceiling:
                    continue
            for mode in core if phase == "core" else extra:
                cell(f"{tgt}/{mode}", lambda mode=mode, tgt=tgt, items=items, tests=tests: run(tgt, mode, items, tests))
            if phase == "core":
                continue

            def nearest(tgt=tgt, items=items, tests=tests, adapt_u=adapt_u):
                name = nearest_source(model, args.corpus, utts, adapt_u)
                ref = Voice.load(vdir / f"{tgt}_adaspeech_{len(items)}.safetensors").utterance
                return {**E.evaluate_voice(model, source_voice(model, name, ref), tests,
                                           with_wer=tgt not in WER_EXEMPT_TARGETS), "params": 0, "source": name}

            cell(f"{tgt}/nearest", nearest)
            if tgt == args.curve_target:
                for n in args.curve:
                    cell(f"{tgt}/curve_{n}", lambda n=n, tgt=tgt, items=items, tests=tests: run(tgt, "adaspeech", items, tests, n))
    save()


def target_data(corpus, utts: list[dict], target: str, n_test: int) -> tuple[list[dict], list[tuple[str, str]], list[dict]]:
    """A target's adaptation utterances, its first ``n_test`` held-out (wav, text) pairs, and the
    adaptation items loaded for training; one place, so every script adapts and scores alike."""
    adapt_u = [u for u in utts if u["speaker"] == target and u["split"] == "adapt"]
    test_u = [u for u in utts if u["speaker"] == target and u["split"] == "test"][:n_test]
    return adapt_u, [(str(Path(corpus) / u["wav"]), u["text"]) for u in test_u], load_items(corpus, adapt_u)


def _ci(r: dict, metric: str, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    """'value [lo, hi]' with the bootstrap interval when per-sentence values were kept."""
    if metric not in r:
        return "n/a"
    text = fmt.format(scale * r[metric])
    per = r.get("per_sentence")
    if per and (metric != "wer" or "word_errors" in per):
        lo, hi = E.bootstrap_interval(per, metric)
        text += " [" + fmt.format(scale * lo) + ", " + fmt.format(scale * hi) + "]"
    return text


def gaps(results: dict, target: str) -> dict | None:
    """AdaSpeech against the whole decoder and E^s-only on one target, with paired bootstrap intervals.

    ``sim_gap`` = decoder - AdaSpeech similarity, ``mcd_gap`` = AdaSpeech - decoder MCD (bars: <= 0.03,
    <= 0.3 dB); ``*_rel`` divides the gap by the E^s-only -> decoder range (0: AdaSpeech reaches the
    decoder; 1: no better than E^s alone). ``vs_speaker_*`` > 0 means AdaSpeech beats E^s-only;
    ``wer_vs_ceiling`` = AdaSpeech WER - vocoded-truth WER (bar: <= 10 points where the ceiling < 30%)."""
    a, sp, dec, ceil = (results.get(f"{target}/{k}") for k in ("adaspeech", "speaker", "decoder", "ceiling"))
    if not (a and sp and dec and all("per_sentence" in r for r in (a, sp, dec))):
        return None
    pa, ps, pd = a["per_sentence"], sp["per_sentence"], dec["per_sentence"]
    out = {"sim_gap": dec["similarity"] - a["similarity"], "sim_gap_ci": E.bootstrap_interval(pd, "similarity", pa),
           "mcd_gap": a["mcd"] - dec["mcd"], "mcd_gap_ci": E.bootstrap_interval(pa, "mcd", pd),
           "vs_speaker_sim": a["similarity"] - sp["similarity"], "vs_speaker_sim_ci": E.bootstrap_interval(pa, "similarity", ps),
           "vs_speaker_mcd": sp["mcd"] - a["mcd"], "vs_speaker_mcd_ci": E.bootstrap_interval(ps, "mcd", pa)}
    sim_range, mcd_range = dec["similarity"] - sp["similarity"], sp["mcd"] - dec["mcd"]
    out["sim_gap_rel"] = out["sim_gap"] / sim_range if abs(sim_range) > 1e-9 else None
    out["mcd_gap_rel"] = out["mcd_gap"] / mcd_range if abs(mcd_range) > 1e-9 else None
    out["met_sim"] = out["sim_gap"] <= 0.03 and out["vs_speaker_sim"] > 0
    out["met_mcd"] = out["mcd_gap"] <= 0.3 and out["vs_speaker_mcd"] > 0
    if ceil and "wer" in a and "wer" in ceil:
        out["wer_vs_ceiling"] = a["wer"] - ceil["wer"]
        out["wer_vs_ceiling_ci"] = E.bootstrap_interval(pa, "wer", ceil["per_sentence"]) if "per_sentence" in ceil else None
        out["wer_bar_applies"] = ceil["wer"] < 0.30
        out["met_wer"] = (not out["wer_bar_applies"]) or out["wer_vs_ceiling"] <= 0.10
    return out


def write_table(results: dict, path: Path) -> None:
    names = {"ceiling": "vocoded ground truth (ceiling)", "adaspeech": "AdaSpeech (CLN + speaker emb.)",
             "speaker": "(a) speaker embedding only", "decoder": "(b) whole decoder fine-tuned",
             "nocln": "(c) AdaSpeech without CLN", "nearest": "(d) no adaptation: nearest source speaker"}
    lines = ["Values with 95% bootstrap intervals over the held-out sentences.", "",
             "| target | system | fine-tuned params | stored per voice | MCD (dB) ↓ | speaker sim. ↑ | WER (%) ↓ | n |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    targets = sorted({k.split("/")[0] for k in results})
    for t in targets:
        for key, label in names.items():
            r = results.get(f"{t}/{key}")
            if r:
                extra = f" ({r['source']})" if "source" in r else ""
                lines.append(f"| {t} | {label}{extra} | {r['params']} | {r.get('stored', r['params'])} | {_ci(r, 'mcd')} "
                             f"| {_ci(r, 'similarity', fmt='{:.3f}')} | {_ci(r, 'wer', 100, '{:.1f}')} | {r.get('n', '')} |")
    rows = [(t, gaps(results, t)) for t in targets]
    rows = [(t, g) for t, g in rows if g]
    if rows:
        def rel(x):
            return "n/a" if x is None else f"{x:.2f}"

        def iv(c, scale=1.0, fmt="{:.3f}"):
            return "[" + fmt.format(scale * c[0]) + ", " + fmt.format(scale * c[1]) + "]" if c else ""

        lines += ["", "Gap to whole-decoder fine-tuning (paired bootstrap 95%; rel. = gap / (E^s-only -> decoder range)):", "",
                  "| target | sim. gap (bar ≤ 0.03) | rel. | MCD gap dB (bar ≤ 0.3) | rel. | sim. over E^s-only | MCD over E^s-only | "
                  "WER - ceiling (pts) | bars met |", "|---|---|---:|---|---:|---|---|---|---|"]
        for t, g in rows:
            w = "n/a"
            if "wer_vs_ceiling" in g:
                w = f"{100 * g['wer_vs_ceiling']:.1f} {iv(g['wer_vs_ceiling_ci'], 100, '{:.1f}')}" + ("" if g["wer_bar_applies"] else " (ceiling ≥ 30%: no bar)")
            met = [k[4:] for k in ("met_sim", "met_mcd", "met_wer") if g.get(k)]
            lines.append(f"| {t} | {g['sim_gap']:.3f} {iv(g['sim_gap_ci'])} | {rel(g['sim_gap_rel'])} | {g['mcd_gap']:.2f} "
                         f"{iv(g['mcd_gap_ci'], fmt='{:.2f}')} | {rel(g['mcd_gap_rel'])} | {g['vs_speaker_sim']:.3f} "
                         f"{iv(g['vs_speaker_sim_ci'])} | {g['vs_speaker_mcd']:.2f} {iv(g['vs_speaker_mcd_ci'], fmt='{:.2f}')} | {w} | "
                         f"{', '.join(met) or 'none'} |")
    curve = sorted((int(k.split("_")[-1]), k) for k in results if "/curve_" in k)
    if curve:
        t = curve[0][1].split("/")[0]
        lines += ["", f"Quality against adaptation sentences (AdaSpeech, target {t}):", "",
                  "| sentences | MCD (dB) ↓ | speaker sim. ↑ | WER ↓ |", "|---:|---:|---:|---:|"]
        full = results.get(f"{t}/adaspeech")
        pts = [(n, results[k]) for n, k in curve] + ([(20, full)] if full else [])
        for n, r in pts:
            lines.append(f"| {n} | {r['mcd']:.2f} | {r['similarity']:.3f} | {_ci(r, 'wer', 100, '{:.1f}')} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
