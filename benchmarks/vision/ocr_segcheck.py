"""Line segmentation against the renderer's line boxes on the validation pages (no model reading).

    python benchmarks/vision/ocr_segcheck.py [--segmentation valleys] [--pages 20]

The selection pages (``ocr_select_model.py``: template-free pages from the validation seeds, training font
families and Lato) are rendered again with their line boxes, scaled to the embedded model's page scale and cut
by ``read.line_borders``. A chunk holding the centres of two or more truth lines is a merge (the model reads one
line of a band); a line whose centre no chunk holds is lost; a chunk holding no centre is a fragment (or a
rule the renderer did not box).
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segmentation", choices=("gaps", "valleys"), default=None, help="default: the package's")
    ap.add_argument("--pages", type=int, default=20, help="pages per set (default 20)")
    ap.add_argument("--model", default=None, help="model directory whose page scale is used (default: embedded)")
    args = ap.parse_args(argv)

    from seqverse.vision.ocr import read, synth
    from seqverse.vision.ocr.model import default_model_dir, load
    from seqverse.vision.ocr.train import VAL_SEED_BASE

    if args.segmentation:
        read.LINE_SEGMENTATION = args.segmentation
    _, proc = load(args.model or default_model_dir())
    total = merged = lost = fragments = 0
    for families, name in ((synth.TRAIN_FAMILIES, "training"), (synth.VALIDATION_FAMILIES, "lato")):
        for i in range(args.pages):
            page = synth.render_page(VAL_SEED_BASE + 1000 + i, families=families)
            scaled = proc.page_scale(page.image)
            f = scaled.height / page.image.height
            gray = np.asarray(scaled.convert("L"), dtype=np.float32)
            prof = read.ink_mask(gray).sum(1)
            b = read.line_borders(prof, proc.cfg.line_pitch, gray.shape[1])
            spans = [s for s in (read.trim(gray, t, u, prof) for t, u in zip(b[:-1], b[1:]) if u > t) if s]
            centres = [f * (t + u) / 2 for t, u in page.boxes]
            hold = [[k for k, c in enumerate(centres) if a <= c < z] for a, z in spans]
            shared = [h for h in hold if len(h) > 1]
            covered = {k for h in hold for k in h}
            missing = [k for k in range(len(centres)) if k not in covered]
            total += len(centres)
            merged += sum(len(h) for h in shared)
            lost += len(missing)
            fragments += sum(not h for h in hold)
            if shared or missing:
                print(name, i, "shared:", [[page.lines[k][:20] for k in h] for h in shared],
                      "lost:", [page.lines[k][:20] for k in missing])
    print(f"segmentation {read.LINE_SEGMENTATION}: lines {total}, in shared chunks {merged}, lost {lost}, "
          f"chunks holding no line {fragments}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
