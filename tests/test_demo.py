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
    for header in ("== core:", "== genomics / DNA-ESA", "== genomics / HyenaDNA", "== speech / AdaSpeech",
                   "== vision / OCR", "== recsys / Recformer"):
        assert header in run.stdout
    for result in ("mapq20_error_rate", "bits_per_base", "word_f1", "item_id"):  # each job's output table
        assert result in run.stdout
    assert (out / "lambda.sam").stat().st_size > 0 and (out / "hello.wav").stat().st_size > 1000
    assert len(list((out / "ocr").glob("*.txt"))) == 2
