"""The embedded ProLLaMA default: offline HF directory, fp16 safetensors <= 25 MB, card, generate/predict round trip."""

import json

from safetensors import safe_open

from seqverse.genomics.prollama.tasks import AMINO_ACIDS, ASSETS, Decoding, ProLLaMA


def test_embedded_files_fp16_and_small():
    files = {f.name for f in ASSETS.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "superfamilies.json", "MODEL_CARD.md"} <= files
    assert sum(f.stat().st_size for f in ASSETS.iterdir()) <= 25 * 2**20
    with safe_open(str(ASSETS / "model.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}
        assert not any("lora" in k for k in f.keys())  # LoRA merged
    fams = json.loads((ASSETS / "superfamilies.json").read_text())
    assert len(fams) >= 10 and {"Pkinase", "fn3", "RRM_1", "SMC_N"} <= set(fams)


def test_embedded_generate_predict_round_trip():
    model = ProLLaMA.from_dir()
    seqs = model.generate(2, "fn3", prefix="MK", seed=3, decoding=Decoding(max_new_tokens=40))
    assert len(seqs) == 2 and all(s.startswith("MK") and set(s) <= set(AMINO_ACIDS) for s in seqs)
    again = model.generate(2, "fn3", prefix="MK", seed=3, decoding=Decoding(max_new_tokens=40))
    assert again == seqs  # the seed fixes the sample
    pred = model.predict([(f"g{i}", s) for i, s in enumerate(seqs)])
    assert [p["id"] for p in pred] == ["g0", "g1"]
    assert all(p["superfamily"] in model.superfamilies and 1 / len(model.superfamilies) <= p["score"] <= 1 for p in pred)
