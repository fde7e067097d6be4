"""A tiny EMOTE corpus on disk (silent wavs, one pause phone each), for tests of packing and loading."""

import json

import numpy as np


def fake_voice(out, name, split, n):
    """Write voice ``name``'s ``n`` utterances of ``split`` (0.1 s, 0.2 s, ...) into corpus directory ``out``."""
    import soundfile as sf

    (out / "wavs").mkdir(exist_ok=True)
    (out / "voices").mkdir(exist_ok=True)
    items = []
    for i in range(n):
        uid = f"{name}__{split}{i:03d}"
        sf.write(out / "wavs" / f"{uid}.wav", np.zeros(1600 * (i + 1), np.float32), 16000, subtype="PCM_16")
        items.append({"id": uid, "sentence": f"s{i}", "voice": name, "split": split, "engine": "festival",
                      "phones": [[0.0, 0.1 * (i + 1), "pau", "sil"]]})
    (out / "voices" / f"{name}.json").write_text(json.dumps({"voice": {}, "items": items}))
