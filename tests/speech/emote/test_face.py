"""The open face model: forward passes agree, the jaw opens the mouth, the AU basis matches the motion layout."""

import numpy as np
import pytest
import torch

from seqverse.speech.emote import face_build as FB
from seqverse.speech.emote.face import FaceModel, axis_angle_to_matrix
from seqverse.speech.emote.motion import EXPR


@pytest.fixture(scope="module")
def face():
    return FaceModel()


def test_asset_layout(face):
    assert face.v_template.shape == (face.n_vertices, 3) and 3000 < face.n_vertices < 6000
    assert face.exprdirs.shape == (20, face.n_vertices, 3)
    assert face.expression_names == EXPR
    assert len(face.identity_names) >= 3 and face.id_offsets.shape[0] == len(face.identity_names)
    assert face.faces.max() < face.n_vertices and len(face.landmark_vertices) == 68


def test_torch_forward_equals_numpy_reference(face):
    rng = np.random.default_rng(0)
    expr = rng.uniform(-0.5, 1.0, (2, 5, 20)).astype(np.float32)
    jaw = rng.uniform(-0.1, 0.3, (2, 5, 3)).astype(np.float32)
    ident = [1, 3]
    ref = np.stack([face.vertices(expr[b], jaw[b], ident[b]) for b in range(2)])
    fast = face.vertices_torch(torch.from_numpy(expr), torch.from_numpy(jaw), torch.tensor(ident)).numpy()
    assert np.abs(ref - fast).max() < 1e-3
    sub = (5, 77, int(face.lip_vertices[0]))
    part = face.vertices_torch(torch.from_numpy(expr), torch.from_numpy(jaw), torch.tensor(ident), sub).numpy()
    assert np.abs(part - fast[:, :, list(sub)]).max() < 1e-4


def test_jaw_opens_and_lip_press_closes(face):
    e = np.zeros((4, 20))
    jaw = np.array([[0, 0, 0], [0.05, 0, 0], [0.1, 0, 0], [0.2, 0, 0]])
    opening = face.mouth_opening(face.vertices(e, jaw))
    assert np.all(np.diff(opening) > 1.0) and opening[-1] > 15
    press = np.zeros((1, 20))
    press[0, EXPR.index("lip_press")] = 1
    assert face.mouth_opening(face.vertices(press, np.zeros((1, 3))))[0] < opening[0] - 1.0


def test_rodrigues_is_a_rotation():
    r = axis_angle_to_matrix(np.array([[0.3, -0.2, 0.5]]))[0]
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1)


def test_build_helpers():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(30, 3))
    rot = axis_angle_to_matrix(np.array([0.2, 0.5, -0.1]))
    dst = 1.7 * src @ rot.T + [3, -2, 1]
    assert np.abs(FB.similarity_align(src, dst) - dst).max() < 1e-9
    disp = rng.normal(size=(30, 3))
    assert np.abs(FB.gaussian_rbf(src * 10, disp, src * 10, sigma=3.0, reg=1e-9) - disp).max() < 1e-4
    # a 10 x 10 grid of vertices clustered with 2-unit cells keeps 25 vertices
    g = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    verts = np.concatenate([g, np.zeros((100, 1))], 1)
    faces = np.array([[i * 10 + j, i * 10 + j + 1, i * 10 + j + 10] for i in range(9) for j in range(9)])
    v, f, cluster = FB.decimate(verts, faces, 2.0, np.array([100.0, 100, 100]), 1.0)
    assert len(v) == 25 and cluster.max() == 24 and f.max() < 25
