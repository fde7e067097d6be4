"""Write a merged ProLLaMA directory as the embedded default: fp16 safetensors, tokenizer, labels, model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch


def export_embedded(model_dir: str | Path, out_dir: str | Path, card_md: str) -> dict:
    """Copy ``model_dir`` (merged, HF layout) to ``out_dir`` in fp16 with ``MODEL_CARD.md``; returns sizes."""
    from seqverse.genomics.prollama.stages import load_causal_lm
    from seqverse.genomics.prollama.tasks import PREDICTION_FILE, PRIOR_FILE

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, tokenizer = load_causal_lm(model_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.copy(model_dir / "superfamilies.json", tmp / "superfamilies.json")
    for name in (PRIOR_FILE, PREDICTION_FILE):  # the prediction decoding chosen on validation travels with the model
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, tmp / name)
    (tmp / "MODEL_CARD.md").write_text(card_md)
    for f in tmp.iterdir():
        f.chmod(0o644)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    size = sum(f.stat().st_size for f in out_dir.iterdir())
    return {"bytes": size, "params": sum(p.numel() for p in model.parameters()),
            "superfamilies": json.loads((out_dir / "superfamilies.json").read_text())}
