"""Gap to whole-decoder fine-tuning against the number of base timbres in the source corpus (issue 27).

For each N (default 5, 10, 16): train a source model on the speakers of the corpus's first N base
timbres (corpus order: espeak-ng, kal, ked, awb, rms, then the contrib/non-free voices; see
``train.source_timbres``), then run the benchmark's core cells (ceiling, AdaSpeech, E^s-only,
whole decoder) on every target, and tabulate the similarity / MCD gaps with paired bootstrap
intervals. Resumable at every level: training resumes from ``WORK/nN/checkpoint``, benchmark cells
already in ``WORK/nN/bench/results.json`` are skipped. One process, one thread; run it niced.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/speech/adaspeech/timbre_curve.py \
        --corpus runs/adaspeech/corpus27 --work runs/adaspeech/timbres --steps 1500
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_adaspeech  # noqa: E402  (the benchmark beside this script)


def main(argv=None):
    from seqverse.speech.adaspeech.corpus import load_corpus
    from seqverse.speech.adaspeech.model import PAPER_SIZE
    from seqverse.speech.adaspeech.train import source_timbres, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="runs/adaspeech/corpus27", help="extended corpus (adaspeech corpus --voices extended)")
    ap.add_argument("--work", default="runs/adaspeech/timbres", help="one sub-directory per N")
    ap.add_argument("--counts", nargs="*", type=int, default=[5, 10, 16], help="numbers of base timbres")
    ap.add_argument("--steps", type=int, default=1500, help="source training steps per model (equal for every N)")
    ap.add_argument("--max-frames", type=int, default=2500, help="padded mel frames per batch")
    ap.add_argument("--n-test", type=int, default=40, help="held-out sentences per target")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    _, summary = load_corpus(args.corpus)
    timbres = source_timbres(summary)
    rows = {}
    for n in args.counts:
        run = Path(args.work) / f"n{n}"
        train(args.corpus, run, steps=args.steps, max_frames=args.max_frames, checkpoint_every=100,
              config_overrides=dict(PAPER_SIZE), n_timbres=n)
        bench_adaspeech.main(["--corpus", args.corpus, "--model", str(run / "model"), "--out", str(run / "bench"),
                    "--voices", str(run / "voices"), "--n-test", str(args.n_test), "--core-only"])
        results = json.loads((run / "bench" / "results.json").read_text())
        rows[n] = {"timbres": timbres[:n], **{t: bench_adaspeech.gaps(results, t) for t in sorted({k.split("/")[0] for k in results})}}
        (Path(args.work) / "curve.json").write_text(json.dumps(rows, indent=1, default=list))
    lines = ["| base timbres | target | sim. gap [95%] | rel. | MCD gap dB [95%] | rel. | WER - ceiling (pts) |",
             "|---:|---|---|---:|---|---:|---:|"]
    for n, row in rows.items():
        for t, g in row.items():
            if t == "timbres" or not g:
                continue
            lines.append(f"| {n} | {t} | {g['sim_gap']:.3f} [{g['sim_gap_ci'][0]:.3f}, {g['sim_gap_ci'][1]:.3f}] | "
                         f"{g['sim_gap_rel'] if g['sim_gap_rel'] is None else round(g['sim_gap_rel'], 2)} | "
                         f"{g['mcd_gap']:.2f} [{g['mcd_gap_ci'][0]:.2f}, {g['mcd_gap_ci'][1]:.2f}] | "
                         f"{g['mcd_gap_rel'] if g['mcd_gap_rel'] is None else round(g['mcd_gap_rel'], 2)} | "
                         f"{_wer_gap(g)} |")
    (Path(args.work) / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _wer_gap(g: dict) -> str:
    """AdaSpeech WER minus the vocoded-truth WER in points, or 'n/a' for WER-exempt targets."""
    return f"{100 * g['wer_vs_ceiling']:.1f}" if "wer_vs_ceiling" in g else "n/a"


if __name__ == "__main__":
    main()
