"""Build the open FLAME-like face model from the meshes shipped in the ``menpo3d`` sdist (BSD-3-Clause).

Sources (menpo3d 0.8.6, ``menpo3d/data``): ``template.ply`` (a 53,349-vertex neutral head,
68 iBUG landmarks in ``template.ljson``) and ``james.obj`` (a second person's face scan with its
own 68 landmarks in ``james.ljson``, listed in a different group order).

Steps (each a small function below):
1. decimate the template by vertex clustering (cells 3x finer around the mouth so the lips keep
   their shape), units to millimetres;
2. a jaw hinge: joint between the ear-level jaw landmarks, linear-blend-skinning weights that
   are 1 below the inner lip line and fade out over the cheeks and neck; the mesh is cut along
   the inner lip line so the mouth opens (FLAME's mouth is open the same way);
3. 20 action-unit blendshapes: each AU moves a few landmarks by a few millimetres with the other
   landmarks anchored; a Gaussian RBF carries the motion to every vertex, in a space lifted by
   the jaw weight so the upper and lower lips (1 mm apart) move independently;
4. identities: ``james`` landmarks aligned (similarity Procrustes) to the template and the
   difference carried to the mesh by a smooth RBF; two more identities mix and exaggerate it.

Run ``seqverse-speech emote build-face --menpo3d DIR`` (``DIR`` = the unpacked sdist's
``menpo3d/data``); the result is ``emote/assets/face_model.npz``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError

# Expression basis: (name, FACS action unit, {landmark: displacement in mm (x right, y up, z forward)}).
# x of the template points to the subject's left (landmark 36, the subject's right eye corner, has x < 0);
# _sym() mirrors a displacement to the other side.
LEFT_CORNERS, RIGHT_CORNERS = (54, 64), (48, 60)
UPPER_LIP, LOWER_LIP = (49, 50, 51, 52, 53, 61, 62, 63), (55, 56, 57, 58, 59, 65, 66, 67)


def _sym(pairs_left, pairs_right, d):
    dx, dy, dz = d
    out = {i: (dx, dy, dz) for i in pairs_left}
    out.update({i: (-dx, dy, dz) for i in pairs_right})
    return out


def _all(idx, d):
    return {i: tuple(d) for i in idx}


ACTION_UNITS = [
    ("lip_corner_pull", "AU12", _sym(LEFT_CORNERS, RIGHT_CORNERS, (4.0, 5.0, -3.0))),
    ("lip_corner_depress", "AU15", _sym(LEFT_CORNERS, RIGHT_CORNERS, (0.5, -4.5, -0.5))),
    ("lip_pucker", "AU18", {**_sym(LEFT_CORNERS, RIGHT_CORNERS, (-7.0, 0.0, 3.0)),
                            **_all(UPPER_LIP + LOWER_LIP, (0.0, 0.0, 6.0))}),
    ("lip_funnel", "AU22", {**_sym(LEFT_CORNERS, RIGHT_CORNERS, (-4.0, 0.0, 2.0)),
                            **_all((49, 50, 51, 52, 53), (0.0, 2.5, 5.0)), **_all((55, 56, 57, 58, 59), (0.0, -2.5, 5.0)),
                            **_all((61, 62, 63), (0.0, 2.5, 3.0)), **_all((65, 66, 67), (0.0, -2.5, 3.0))}),
    ("lip_press", "AU24", {**_all((49, 50, 51, 52, 53), (0.0, -0.8, -1.5)), **_all((61, 62, 63), (0.0, -1.6, -1.5)),
                           **_all((55, 56, 57, 58, 59), (0.0, 0.8, -1.5)), **_all((65, 66, 67), (0.0, 1.6, -1.5))}),
    ("lip_stretch", "AU20", _sym(LEFT_CORNERS, RIGHT_CORNERS, (5.0, -1.5, -1.0))),
    ("upper_lip_raise", "AU10", _all((49, 50, 51, 52, 53, 61, 62, 63), (0.0, 3.5, 0.5))),
    ("lower_lip_depress", "AU16", _all((55, 56, 57, 58, 59, 65, 66, 67), (0.0, -3.5, 1.0))),
    ("chin_raise", "AU17", {**_all((7, 8, 9), (0.0, 3.0, 1.5)), **_all(LOWER_LIP, (0.0, 2.0, 1.5))}),
    ("lip_tighten", "AU23", {**_all((49, 50, 51, 52, 53), (0.0, -1.5, -1.0)), **_all((55, 56, 57, 58, 59), (0.0, 1.5, -1.0))}),
    ("inner_brow_raise", "AU1", _all((20, 21, 22, 23), (0.0, 6.0, 0.5))),
    ("outer_brow_raise", "AU2", _all((17, 18, 25, 26), (0.0, 6.0, 0.0))),
    ("brow_lower", "AU4", {**_sym((22, 23, 24), (19, 20, 21), (-2.5, -4.5, 0.5)), **_all((17, 26), (0.0, -2.0, 0.0))}),
    ("cheek_raise", "AU6", {**_all((40, 41, 46, 47), (0.0, 1.5, 0.0)), **_sym((54,), (48,), (1.0, 2.0, 0.0))}),
    ("upper_lid_raise", "AU5", _all((37, 38, 43, 44), (0.0, 2.0, 0.5))),
    ("lid_tighten", "AU7", {**_all((40, 41, 46, 47), (0.0, 2.0, 0.0)), **_all((37, 38, 43, 44), (0.0, -1.0, 0.0))}),
    ("eye_blink", "AU45", _all((37, 38, 43, 44), (0.0, -6.0, 0.0))),
    ("nose_wrinkle", "AU9", {**_all((31, 32, 33, 34, 35), (0.0, 2.5, 0.0)), **_all((21, 22), (0.0, -2.0, 0.0)),
                             **_all((50, 51, 52), (0.0, 1.5, 0.0))}),
    ("dimpler", "AU14", _sym(LEFT_CORNERS, RIGHT_CORNERS, (-1.0, 0.5, -3.5))),
    ("nostril_dilate", "AU38", _sym((35,), (31,), (1.8, 0.0, 0.0))),
]

# james.ljson lists its groups as chin, leye, reye, leyebrow, nose, reyebrow, mouth: JAMES_ORDER[j] is the
# iBUG index of james point j; IBUG_FROM_JAMES reorders james' points into iBUG order.
JAMES_ORDER = (list(range(17)) + list(range(36, 42)) + list(range(42, 48)) + list(range(17, 22))
                 + list(range(27, 36)) + list(range(22, 27)) + list(range(48, 68)))
IBUG_FROM_JAMES = np.argsort(JAMES_ORDER)
# The jaw contour is placed differently on the two meshes (10-18 mm apart after alignment): warp by the
# chin and the inner-face landmarks only.
WARP_LANDMARKS = [8] + list(range(17, 68))


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [N, 3] and triangles [F, 3] of menpo3d's binary little-endian template.ply."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    vd = np.dtype([("p", "<f4", (3,)), ("c", "u1", (4,))])
    fd = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
    v = np.frombuffer(raw, vd, nv, end)
    f = np.frombuffer(raw, fd, nf, end + nv * vd.itemsize)
    if not np.all(f["n"] == 3):
        raise ValueError(f"{path}: only triangle faces are supported")
    return v["p"].astype(np.float64), f["i"].astype(np.int64)


def read_landmarks(path: Path) -> np.ndarray:
    return np.asarray(json.loads(Path(path).read_text())["groups"]["LJSON"]["landmarks"]["points"], dtype=np.float64)


def read_obj_vertices(path: Path) -> np.ndarray:
    return np.array([[float(x) for x in line.split()[1:4]] for line in Path(path).read_text().splitlines()
                     if line.startswith("v ")])


def decimate(verts: np.ndarray, faces: np.ndarray, cell: float, fine_centre: np.ndarray, fine_radius: float,
             fine_factor: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex clustering (Rossignac & Borrel 1993): one vertex per occupied grid cell, at the cell mean.

    Cells are ``fine_factor`` times smaller within ``fine_radius`` of ``fine_centre`` (the mouth).
    Returns new vertices, faces and the cluster id of every source vertex.
    """
    fine = np.linalg.norm(verts - fine_centre, axis=1) < fine_radius
    size = np.where(fine, cell / fine_factor, cell)[:, None]
    keys = np.concatenate([np.floor(verts / size).astype(np.int64), fine[:, None].astype(np.int64)], axis=1)
    _, cluster = np.unique(keys, axis=0, return_inverse=True)
    cluster = cluster.ravel()
    n = cluster.max() + 1
    new_v = np.zeros((n, 3))
    np.add.at(new_v, cluster, verts)
    new_v /= np.bincount(cluster, minlength=n)[:, None]
    f = cluster[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return new_v, f[np.sort(first)], cluster


def lip_line_y(x: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Height of the inner lip line (midway between inner upper and lower lip landmarks) at x."""
    upper = lm[[60, 61, 62, 63, 64]]
    lower = lm[[60, 67, 66, 65, 64]]
    mid = (upper + lower) / 2
    order = np.argsort(mid[:, 0])
    return np.interp(x, mid[order, 0], mid[order, 1])


def jaw_weights(verts: np.ndarray, lm: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """LBS weight of the jaw joint per vertex: 1 below the lip line, a soft fade over cheeks, ears and neck."""
    x, y, z = verts.T
    half_mouth = (lm[64, 0] - lm[60, 0]) / 2
    centre_x = (lm[64, 0] + lm[60, 0]) / 2
    outside = np.clip(np.abs(x - centre_x) - half_mouth, 0, None)
    width = 0.6 + 0.5 * outside           # sharp inside the mouth, broad towards the cheeks
    below = 1 / (1 + np.exp(-(lip_line_y(x, lm) - y) / width))
    jaw_half = (lm[12, 0] - lm[4, 0]) / 2
    lateral = np.exp(-np.clip(np.abs(x - centre_x) - jaw_half, 0, None) ** 2 / (2 * 12.0 ** 2))
    chin_y = lm[8, 1]
    neck = np.exp(-np.clip(chin_y - 8.0 - y, 0, None) ** 2 / (2 * 15.0 ** 2))
    back = 1 / (1 + np.exp(-(z - (joint[2] + 25.0)) / 6.0))
    return np.clip(below * lateral * neck * back, 0, 1)


def cut_mouth(verts: np.ndarray, faces: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Drop triangles that straddle the inner lip line between the mouth corners, so the lips can part."""
    x, y, z = verts.T
    side = y > lip_line_y(x, lm)
    fx = x[faces].mean(1)
    inside = (fx > lm[60, 0] + 1.0) & (fx < lm[64, 0] - 1.0) & (z[faces].mean(1) > lm[62, 2] - 12.0)
    straddle = side[faces].any(1) & ~side[faces].all(1)
    return faces[~(inside & straddle)]


def gaussian_rbf(src: np.ndarray, disp: np.ndarray, dst: np.ndarray, sigma: float, reg: float = 1e-4) -> np.ndarray:
    """Carry displacements known at ``src`` points to ``dst`` points by Gaussian RBF interpolation."""
    def kern(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma ** 2))

    weights = np.linalg.solve(kern(src, src) + reg * np.eye(len(src)), disp)
    return kern(dst, src) @ weights


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` points moved by the rotation, scale and translation that best fit them to ``dst`` (Umeyama 1991)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1, 1, d]) @ vt
    scale = (s * [1, 1, d]).sum() / (a ** 2).sum()
    return scale * a @ rot.T + md


def build_face_model(menpo3d_data: str | Path, out: str | Path, cell_mm: float = 5.2) -> dict:
    """Build ``face_model.npz`` from menpo3d's ``data`` directory; returns a summary."""
    data = Path(menpo3d_data)
    for name in ("template.ply", "template.ljson", "james.ljson"):
        if not (data / name).is_file():
            raise InputError(f"{data}: no {name} (give the menpo3d/data directory of the menpo3d sdist)")
    verts, faces = read_ply(data / "template.ply")
    verts, lm = verts / 1000.0, read_landmarks(data / "template.ljson") / 1000.0   # template units are um
    mouth = lm[48:68].mean(0)
    v, f, _ = decimate(verts, faces, cell_mm, mouth, 30.0)
    lm_idx = np.array([int(np.argmin(np.linalg.norm(v - p, axis=1))) for p in lm])
    joint = np.array([0.5 * (lm[0, 0] + lm[16, 0]), 0.5 * (lm[0, 1] + lm[16, 1]) - 10.0, 0.5 * (lm[0, 2] + lm[16, 2]) - 10.0])
    w = jaw_weights(v, lm, joint)
    f = cut_mouth(v, f, lm)
    # inner-lip midpoints used for mouth opening: the vertex nearest landmark 62 on the upper side, 66 on the lower
    x, y, _ = v.T
    upper_side, near_mid = y > lip_line_y(x, lm), np.abs(x - lm[62, 0]) < 3.0
    cand_u = np.where(upper_side & near_mid & (w < 0.2))[0]
    cand_l = np.where(~upper_side & near_mid & (w > 0.8))[0]
    lip_upper = int(cand_u[np.argmin(np.linalg.norm(v[cand_u] - lm[62], axis=1))])
    lip_lower = int(cand_l[np.argmin(np.linalg.norm(v[cand_l] - lm[66], axis=1))])
    # lip region (for lip vertex error): within 14 mm of the mouth landmarks' bounding ellipse
    mouth_c = lm[48:60].mean(0)
    rx, ry = (lm[54, 0] - lm[48, 0]) / 2 + 8.0, (lm[51, 1] - lm[57, 1]) / 2 + 8.0
    lip_mask = (((v[:, 0] - mouth_c[0]) / rx) ** 2 + ((v[:, 1] - mouth_c[1]) / ry) ** 2 < 1) & (v[:, 2] > mouth_c[2] - 15)

    # expression basis: landmark displacements -> RBF in a space lifted by the jaw weight (20 mm per unit)
    lm_w = w[lm_idx].copy()
    lm_w[list(UPPER_LIP)] = 0.0
    lm_w[list(LOWER_LIP)] = 1.0
    lm_w[[48, 54, 60, 64]] = 0.5
    lift = 20.0
    src = np.concatenate([lm, lift * lm_w[:, None]], 1)
    dst = np.concatenate([v, lift * w[:, None]], 1)
    exprdirs = []
    for _name, _au, moves in ACTION_UNITS:
        disp = np.zeros((68, 3))
        for i, d in moves.items():
            disp[i] = d
        exprdirs.append(gaussian_rbf(src, disp, dst, sigma=9.0))
    exprdirs = np.stack(exprdirs)

    # identities: template, james (landmark warp), a half-way mix, and the template pushed away from james
    james = read_landmarks(data / "james.ljson")[IBUG_FROM_JAMES][WARP_LANDMARKS]
    james = similarity_align(james, lm[WARP_LANDMARKS])
    offset_lm = james - lm[WARP_LANDMARKS]
    offset_lm -= offset_lm.mean(0)
    offset = gaussian_rbf(lm[WARP_LANDMARKS], offset_lm, v, sigma=30.0, reg=1e-2)
    id_names = ["menpo_template", "james", "template_james_mix", "anti_james"]
    id_offsets = np.stack([np.zeros_like(v), offset, 0.5 * offset, -0.6 * offset])
    # joint moves with the identity as the mean offset of the vertices it carries most
    carry = w > 0.9
    joints = np.stack([joint + o[carry].mean(0) for o in id_offsets])

    model = {
        "v_template": v.astype(np.float32), "faces": f.astype(np.int32), "jaw_weights": w.astype(np.float32),
        "exprdirs": exprdirs.astype(np.float32), "id_offsets": id_offsets.astype(np.float32),
        "joints": joints.astype(np.float32), "landmark_vertices": lm_idx.astype(np.int32),
        "lip_vertices": np.array([lip_upper, lip_lower], dtype=np.int32), "lip_mask": lip_mask,
        "expression_names": np.array([n for n, _, _ in ACTION_UNITS]), "facs": np.array([a for _, a, _ in ACTION_UNITS]),
        "identity_names": np.array(id_names),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **model)
    tmp.replace(out)
    out.chmod(0o644)
    return {"vertices": len(v), "faces": len(f), "expressions": len(exprdirs), "identities": len(id_names),
            "lip_vertices": int(lip_mask.sum()), "bytes": out.stat().st_size}
