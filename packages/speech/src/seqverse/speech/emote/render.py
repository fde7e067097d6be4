"""Software rendering of the face mesh (painter's algorithm, flat Lambert shading) and mp4 muxing with ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError


def render_frame(vertices: np.ndarray, faces: np.ndarray, size: int = 320, yaw_deg: float = 20.0) -> np.ndarray:
    """[size, size, 3] uint8 image of the mesh seen from the front, turned ``yaw_deg`` about the vertical."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    a = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    v = vertices @ rot.T
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    light = np.array([0.3, 0.4, 0.87])
    shade = np.clip(np.abs(normal @ light), 0.15, 1.0)
    order = np.argsort(tri[:, :, 2].mean(1))
    colors = np.clip(shade[order, None] * np.array([0.93, 0.78, 0.68]), 0, 1)
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.add_collection(PolyCollection(tri[order][:, :, :2], facecolors=colors, edgecolors="none", antialiased=False))
    ax.set_xlim(-95, 95)
    ax.set_ylim(-120, 70)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.set_facecolor((0.12, 0.12, 0.14))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_video(path: str | Path, vertices: np.ndarray, faces: np.ndarray, fps: float, audio: str | Path | None = None,
                size: int = 320, progress: bool = False) -> Path:
    """Render every frame and encode an H.264 mp4 at ``path`` (the caller makes it atomic), audio muxed when given."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise InputError("ffmpeg is not installed: cannot write a video (apt-get install ffmpeg)")
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}",
           "-r", str(fps), "-i", "-"]
    if audio is not None:
        cmd += ["-i", str(audio), "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    frames = range(len(vertices))
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, desc="render", unit="frame")
    for t in frames:
        proc.stdin.write(render_frame(vertices[t], faces, size).tobytes())
    proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed: {err.strip()[:300]}")
    return Path(path)
