"""`make demo` (scripts/demo.sh) runs each system's main job end to end on the embedded models (~30 s)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_every_system(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "VENV": str(Path(sys.executable).parent.parent), "DEMO_OUT": str(out), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    for header in ("== core:", "== genomics / DNA-ESA", "== genomics / HyenaDNA", "== genomics / ProLLaMA",
                   "== speech / AdaSpeech", "== speech / EMOTE", "== vision / OCR", "== vision / OAT",
                   "== recsys / Recformer"):
        assert header in run.stdout
    for result in ("mapq20_error_rate", "bits_per_base", "word_f1", "item_id"):  # each job's output table
        assert result in run.stdout
    import re

    assert re.search(r"^id +superfamily +score", run.stdout, re.M)  # ProLLaMA predict's table
    proteins = (out / "prollama.fa").read_text().splitlines()
    assert len(proteins) == 6 and all(h.startswith(">gen") and "superfamily=Pkinase" in h for h in proteins[::2])
    assert all(seq and seq.isalpha() for seq in proteins[1::2])
    import soundfile as sf

    check = subprocess.run(["samtools", "quickcheck", "-vvv", str(out / "lambda.sam")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # a SAM file samtools accepts, not just a non-empty one
    records = [ln for ln in (out / "lambda.sam").read_text().splitlines() if not ln.startswith("@")]
    assert len(records) >= 100 and all(len(r.split("\t")) >= 11 for r in records)
    info = sf.info(str(out / "hello.wav"))
    assert info.samplerate == 16000 and 0.5 < info.duration < 10  # a spoken sentence, not a click
    import numpy as np

    face = np.load(out / "emote.npz")  # the animated face: frames at 25 fps, mouth opens and closes
    assert face["vertices"].shape[0] == face["expression"].shape[0] > 25 and float(face["fps"]) == 25
    assert face["mouth_opening"].max() > 6 and (out / "emote.mp4").stat().st_size > 10000
    assert len(list((out / "ocr").glob("*.txt"))) == 2
    assert len(list((out / "oat" / "plots").glob("*.png"))) == 1
