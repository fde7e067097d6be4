"""What the CLI calls: shipped model and voices, ``say``, ``adapt`` from files, voice listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqverse.core.clikit import InputError
from seqverse.speech import audio as A

ASSETS = Path(__file__).parent / "assets"
SOURCE_DIR = ASSETS / "source"
VOICES_DIR = ASSETS / "voices"
DEFAULT_VOICE = "slt"


def load_model(model_dir=None):
    from seqverse.speech.adaspeech.model import AdaSpeech

    d = Path(model_dir) if model_dir else SOURCE_DIR
    if model_dir is None and not (d / "model.safetensors").is_file():
        raise InputError(f"no shipped AdaSpeech model in {d}; train one with `seqverse-speech adaspeech train`")
    return AdaSpeech.from_pretrained(d)


def source_reference_vectors(model_dir=None) -> dict[str, torch.Tensor]:
    """Mean utterance-level vectors of the source speakers (saved beside the model)."""
    from safetensors.torch import load_file

    path = (Path(model_dir) if model_dir else SOURCE_DIR) / "speakers.safetensors"
    return load_file(str(path)) if path.is_file() else {}


def list_voices(model_dir=None) -> list[dict]:
    """Shipped adapted voices and the source model's speakers."""
    from seqverse.speech.adaspeech.train import Voice

    rows = []
    for p in sorted(VOICES_DIR.glob("*.safetensors")):
        v = Voice.load(p)
        rows.append({"voice": p.stem, "kind": f"adapted ({v.mode})",
                     "adapted_parameters": int(v.meta.get("fine_tuned", v.n_adapted)), "stored_parameters": v.n_adapted,
                     "default": p.stem == DEFAULT_VOICE})
    for name in source_reference_vectors(model_dir):
        rows.append({"voice": f"source:{name}", "kind": "source speaker", "adapted_parameters": 0,
                     "stored_parameters": 0, "default": False})
    return rows


def resolve_voice(name: str | None, model, model_dir=None):
    """A Voice from a file path, a shipped voice name, or ``source:SPEAKER``."""
    from seqverse.speech.adaspeech.train import Voice, source_voice

    name = name or DEFAULT_VOICE
    if name.startswith("source:"):
        refs = source_reference_vectors(model_dir)
        spk = name[len("source:"):]
        if spk not in refs:
            raise InputError(f"unknown source speaker {spk!r}; `adaspeech voices` lists them")
        return source_voice(model, spk, refs[spk])
    path = Path(name)
    if path.suffix == ".safetensors" or path.is_file():
        return Voice.load(path)
    shipped = VOICES_DIR / f"{name}.safetensors"
    if shipped.is_file():
        return Voice.load(shipped)
    known = ", ".join(r["voice"] for r in list_voices(model_dir))
    raise InputError(f"unknown voice {name!r}; give a .safetensors voice file or one of: {known}")


def say(text: str, out, voice: str | None = None, model_dir=None, duration_scale: float = 1.0) -> dict:
    """Synthesise ``text`` into the wav file ``out`` (Griffin-Lim vocoder)."""
    from seqverse.speech.adaspeech import text as T
    from seqverse.speech.adaspeech.evaluate import synthesise

    if not text or not text.strip():
        raise InputError("empty text: give the sentence to say")
    if duration_scale <= 0:
        raise InputError(f"--speed must be positive, got {duration_scale}")
    phones, unknown = T.to_phonemes(text)
    model = load_model(model_dir)
    v = resolve_voice(voice, model, model_dir)
    audio, mel = synthesise(model, v, text, duration_scale=1.0 / duration_scale)
    A.save_wav(out, audio)
    return {"out": str(out), "seconds": round(len(audio) / A.MEL.sample_rate, 2), "phonemes": len(phones),
            "frames": int(mel.shape[0]), "guessed_words": " ".join(unknown), "voice": voice or DEFAULT_VOICE}


def read_adaptation_set(wavs_dir, texts_file) -> list[tuple[Path, str]]:
    """(wav, text) pairs: each line of ``texts_file`` is ``NAME|text`` or ``NAME<TAB>text`` (NAME a
    wav in ``wavs_dir``, with or without .wav). Problems name the file and line."""
    wavs_dir, texts_file = Path(wavs_dir), Path(texts_file)
    if not wavs_dir.is_dir():
        raise InputError(f"{wavs_dir}: not a directory of wav files")
    if not texts_file.is_file():
        raise InputError(f"{texts_file}: no such texts file")
    pairs = []
    for n, line in enumerate(texts_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        sep = "|" if "|" in line else "\t" if "\t" in line else None
        if sep is None:
            raise InputError(f"{texts_file}:{n}: expected 'NAME|text' (or NAME<TAB>text)")
        name, sentence = (s.strip() for s in line.split(sep, 1))
        if not sentence:
            raise InputError(f"{texts_file}:{n}: empty text for {name}")
        wav = wavs_dir / (name if name.endswith(".wav") else f"{name}.wav")
        if not wav.is_file():
            raise InputError(f"{texts_file}:{n}: {wav} does not exist")
        pairs.append((wav, sentence))
    if not pairs:
        raise InputError(f"{texts_file}: no utterances listed")
    return pairs


def adapt_files(model_dir, wavs_dir, texts_file, out, mode: str = "adaspeech", steps: int = 150, progress: bool = True) -> dict:
    """``adaspeech adapt``: fine-tune a voice on user recordings and save only its parameters."""
    from safetensors.torch import load_file

    from seqverse.speech.adaspeech.corpus import prepare_speech
    from seqverse.speech.adaspeech.train import adapt

    model = load_model(model_dir)
    aligner_path = (Path(model_dir) if model_dir else SOURCE_DIR) / "aligner.safetensors"
    if not aligner_path.is_file():
        raise InputError(f"{aligner_path}: missing (the model directory needs its aligner statistics)")
    al = load_file(str(aligner_path))
    items = prepare_speech(read_adaptation_set(wavs_dir, texts_file), (al["mean"].numpy(), al["var"].numpy()), model.config.stats)
    voice = adapt(model, items, mode=mode, steps=steps, progress=progress)
    stored = voice.deploy(model)
    stored.save(out)
    return {"out": str(out), "mode": mode, "utterances": len(items), "adapted_parameters": voice.n_adapted,
            "stored_parameters": stored.n_adapted, "final_loss": voice.meta.get("final_loss")}


def export_model(model_dir, corpus_dir, out_dir, half: bool = False) -> None:
    """Copy a trained model plus aligner and source-speaker reference vectors into ``out_dir``
    (``half``: weights stored as float16, as the shipped paper-size model is, to stay under 10 MB)."""
    import shutil

    from safetensors.torch import save_file

    from seqverse.core.clikit import atomic_path
    from seqverse.speech.adaspeech.corpus import load_corpus
    from seqverse.speech.adaspeech.train import collate, load_items

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if half:
        load_model(model_dir).save_pretrained(out, dtype=torch.float16)
    for f in ("config.json", "model.safetensors"):
        if not half and (out / f).resolve() != (Path(model_dir) / f).resolve():
            shutil.copy(Path(model_dir) / f, out / f)
    al = np.load(Path(corpus_dir) / "aligner.npz")
    with atomic_path(out / "aligner.safetensors") as tmp:  # 0644, never half-written
        save_file({"mean": torch.from_numpy(al["mean"]), "var": torch.from_numpy(al["var"])}, tmp)
    model = load_model(out if half else model_dir)
    utts, _ = load_corpus(corpus_dir)
    refs = {}
    with torch.no_grad():
        for spk in model.config.speakers:
            items = load_items(corpus_dir, [u for u in utts if u["speaker"] == spk][:10])
            b = collate(items)
            refs[spk] = model.utterance_vector(b["mel"], b["mel_lengths"]).mean(0).contiguous()
    with atomic_path(out / "speakers.safetensors") as tmp:
        save_file(refs, tmp)
