"""The open FLAME-like face model: template + identity offset + expression blendshapes, then a jaw hinge (LBS).

Per frame the animation is ``expression`` [E=20] (action-unit blendshape weights, about 0..1) and
``jaw`` [3] (axis-angle of the jaw joint, radians; x = opening). A FLAME user maps them as:
``jaw`` is FLAME's ``jaw_pose`` (``pose[6:9]``, same axis-angle convention, opening about +x);
``expression`` is not FLAME's PCA basis but 20 named FACS action units (``expression_names``),
each a fixed per-vertex displacement field, so FLAME expression codes are recovered by least squares
of FLAME's ``shapedirs[..., 300:]`` onto these fields at corresponding landmarks.

vertices = LBS_jaw(template + id_offset[identity] + sum_e expression_e * exprdirs_e)
(FLAME's order: shape and expression blendshapes first, then the pose; Li et al. 2017, Sec. 3.)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

ASSET = Path(__file__).parent / "assets" / "face_model.npz"


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: [..., 3] axis-angle -> [..., 3, 3] rotation."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return eye + s * kmat + (1 - c) * (kmat @ kmat)


class FaceModel:
    """Loaded model arrays (see face_build.py) and the forward function, in numpy and torch."""

    def __init__(self, path: str | Path = ASSET):
        z = np.load(path, allow_pickle=False)
        self.v_template = z["v_template"]
        self.faces = z["faces"]
        self.jaw_weights = z["jaw_weights"]
        self.exprdirs = z["exprdirs"]
        self.id_offsets = z["id_offsets"]
        self.joints = z["joints"]
        self.landmark_vertices = z["landmark_vertices"]
        self.lip_vertices = z["lip_vertices"]
        self.lip_mask = z["lip_mask"]
        self.expression_names = [str(s) for s in z["expression_names"]]
        self.facs = [str(s) for s in z["facs"]]
        self.identity_names = [str(s) for s in z["identity_names"]]
        self.n_expr = len(self.expression_names)
        self._torch = {}

    @property
    def n_vertices(self) -> int:
        return len(self.v_template)

    def vertices(self, expression: np.ndarray, jaw: np.ndarray, identity: int = 0) -> np.ndarray:
        """[T, V, 3] vertices (mm) from [T, E] expression and [T, 3] jaw axis-angle (plain numpy reference)."""
        expression = np.asarray(expression, dtype=np.float64)
        rest = self.v_template + self.id_offsets[identity] + np.einsum("te,evc->tvc", expression, self.exprdirs)
        rot = axis_angle_to_matrix(np.asarray(jaw, dtype=np.float64))          # [T, 3, 3]
        joint = self.joints[identity]
        posed = np.einsum("tij,tvj->tvi", rot, rest - joint) + joint
        w = self.jaw_weights[None, :, None]
        return (w * posed + (1 - w) * rest).astype(np.float32)

    def vertices_torch(self, expression, jaw, identity=None, subset=None):
        """Differentiable batched forward: expression [B, T, E], jaw [B, T, 3], identity [B] long -> [B, T, V, 3].

        ``subset`` (a tuple of vertex indices) computes only those vertices (the losses use the lips + a sample).
        """
        import torch

        dev = expression.device
        key = (dev, subset)
        if key not in self._torch:
            idx = np.arange(self.n_vertices) if subset is None else np.asarray(subset)
            arrays = {"v_template": self.v_template[idx], "exprdirs": self.exprdirs[:, idx], "id_offsets": self.id_offsets[:, idx],
                      "joints": self.joints, "jaw_weights": self.jaw_weights[idx]}
            self._torch[key] = {k: torch.as_tensor(a, dtype=torch.float32, device=dev) for k, a in arrays.items()}
        t = self._torch[key]
        b = expression.shape[0]
        if identity is None:
            identity = torch.zeros(b, dtype=torch.long, device=dev)
        rest = t["v_template"] + t["id_offsets"][identity][:, None] + torch.einsum("bte,evc->btvc", expression, t["exprdirs"])
        theta = jaw.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        k = jaw / theta
        kx, ky, kz = k.unbind(-1)
        zero = torch.zeros_like(kx)
        kmat = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(*jaw.shape[:-1], 3, 3)
        s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
        rot = torch.eye(3, device=dev) + s * kmat + (1 - c) * (kmat @ kmat)
        joint = t["joints"][identity][:, None, None]                          # [B, 1, 1, 3]
        posed = torch.einsum("btij,btvj->btvi", rot, rest - joint) + joint
        w = t["jaw_weights"][None, None, :, None]
        return w * posed + (1 - w) * rest

    def mouth_opening(self, vertices: np.ndarray) -> np.ndarray:
        """[T] distance in mm between the inner upper- and lower-lip midpoint vertices."""
        u, l = self.lip_vertices
        return np.linalg.norm(vertices[..., u, :] - vertices[..., l, :], axis=-1)


@lru_cache(maxsize=1)
def default_face() -> FaceModel:
    return FaceModel()
