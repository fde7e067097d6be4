"""What the command line calls: animate a wav file, list emotions, train, evaluate."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from seqverse.core import clikit
from seqverse.core.clikit import InputError
from seqverse.speech.emote import motion as M

DEFAULT_MODEL = Path(__file__).parent / "assets" / "emote"


def list_emotions() -> list[dict]:
    """The emotion names with their action-unit profiles (intensity 3)."""
    return [{"emotion": e, "intensities": "1" if e == "neutral" else "1-3",
             "action_units": ", ".join(f"{k} {v:g}" for k, v in M.EMOTION_PROFILES[e][0].items()) or "-"}
            for e in M.EMOTIONS]


def check_condition(emotion: str, intensity: int, actor: int) -> None:
    if emotion not in M.EMOTIONS:
        raise InputError(f"unknown emotion {emotion!r}; known: {', '.join(M.EMOTIONS)}")
    if intensity not in M.INTENSITIES:
        raise InputError(f"intensity {intensity} out of range; use 1, 2 or 3")
    if not 0 <= actor < M.N_ACTORS:
        raise InputError(f"actor {actor} out of range; use 0-{M.N_ACTORS - 1}")


def load_model(model_dir: str | Path | None = None):
    from seqverse.speech.emote.model import from_pretrained

    d = Path(model_dir) if model_dir else DEFAULT_MODEL
    if not (d / "model.safetensors").is_file():
        raise InputError(f"{d}: no EMOTE model (config.json + model.safetensors)")
    return from_pretrained(d)


def animate(audio_path, out, emotion: str = "neutral", intensity: int = 2, actor: int = 0, video: str | None = None,
            model_dir=None, progress: bool = False) -> dict:
    """Animate the face from speech: writes ``out`` (.npz: fps, expression [T,20], jaw [T,3], vertices [T,V,3],
    mouth_opening [T] mm) and, when ``video`` is given, an mp4 with the audio muxed. Nothing is written on bad input."""
    import torch

    from seqverse.speech.audio import load_wav
    from seqverse.speech.emote.corpus import FPS, SAMPLE_RATE, audio_features, phone_tracks
    from seqverse.speech.emote.data import model_input
    from seqverse.speech.emote.face import default_face
    from seqverse.speech.emote.train import predict

    check_condition(emotion, intensity, actor)
    audio = load_wav(audio_path, SAMPLE_RATE)
    model = load_model(model_dir)
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    mel = audio_features(audio)
    n = len(mel) // 4
    k = model.frames_per_step
    padded = int(np.ceil(n / k) * k)
    mel = model_input(mel, phone_tracks(audio) if model.config.phone_frontend else None, 4 * padded)
    motion = predict(model, mel, M.EMOTIONS.index(emotion), intensity, actor)[:n].numpy()
    expression, jaw = motion[:, :M.E], motion[:, M.E:]
    face = default_face()
    identity = M.actor_style(actor)["identity"]
    vertices = face.vertices(expression, jaw, identity)
    opening = face.mouth_opening(vertices).astype(np.float32)
    out = Path(out)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    with clikit.atomic_path(out) as tmp, (clikit.atomic_path(video) if video else nullcontext()) as tmp_video:
        np.savez_compressed(tmp, fps=np.float32(FPS), expression=expression, jaw=jaw, vertices=vertices,
                            mouth_opening=opening, faces=face.faces, expression_names=np.array(face.expression_names))
        if video:
            from seqverse.speech.emote.render import write_video

            write_video(tmp_video, vertices, face.faces, FPS, audio=audio_path, progress=progress)
    return {"out": str(out), "video": str(video) if video else None, "frames": int(n), "seconds": round(n / FPS, 2),
            "emotion": emotion, "intensity": intensity, "actor": actor,
            "mouth_opening_max_mm": round(float(opening.max()), 2), "mouth_closed_frames": int((opening <= 3.5).sum())}
