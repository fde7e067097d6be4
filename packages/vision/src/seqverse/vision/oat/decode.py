"""One scanpath per display from a trained OAT: the decoding rule, chosen on validation.

* ``greedy``: the most probable object at every step (official ``test_max``). When the next-step
  distribution is flat, its argmax is often the object just fixated (refixating is the one move
  that is always plausible), so greedy scanpaths loop on refixations far more often than people do.
* ``mbr``: minimum Bayes risk under the sequence score (Kumar & Byrne 2004): draw ``n`` scanpaths
  (official ``test_expect``, at ``temperature``) and keep the one with the highest mean sequence
  score to the other draws, the model's own estimate of a scanpath's expected sequence score.
* ``mbr_mm``: the same with the mean of the sequence score and MultiMatch (on object centres) as the
  utility, the two measures the human benchmark judges (MultiMatch is slow: use few draws).
* ``mbr_land``: ``mbr_mm`` with pixels from a landing model (:mod:`.landing`, ours): each draw placed
  at its mean landing positions is scored against every other draw placed at random landings (a
  pseudo-person), so the utility estimates the expected benchmark score against people's raw
  fixations rather than against object centres. Needs a checkpoint with ``landing.json``.
* ``mbr_land_mm``: ``mbr_land`` with MultiMatch alone as the utility (round 5). Across draws the sequence score
  varies far more than MultiMatch, so in ``mbr_land``'s mean the sequence score decides; this is the
  minimum-Bayes-risk choice for MultiMatch itself.
* ``likelihood``: of the ``n`` draws, the one the model gives the highest log-probability.

The official paper reports greedy and the mean over 100 draws; ``mbr`` and ``likelihood`` are
additions, and the benchmark picks one rule per data set on validation only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .displays import Display
from .metrics import sequence_score

DECODINGS = ("greedy", "mbr", "mbr_mm", "mbr_land", "mbr_land_mm", "likelihood")
LANDING_DECODINGS = ("mbr_land", "mbr_land_mm")   # need landing.json beside the checkpoint


def mbr_index_reference(samples: Sequence[Sequence[int]], score: Callable = sequence_score) -> int:
    """Plain all-pairs minimum-Bayes-risk choice (the definition; :func:`mbr_index` must equal it)."""
    n = len(samples)
    if n <= 1:
        return 0
    gain = [sum(score(samples[i], samples[j]) for j in range(n) if j != i) for i in range(n)]
    return next(i for i in range(n) if gain[i] >= max(gain) - 1e-9)  # ties (up to rounding): the earliest


def mbr_index(samples: Sequence[Sequence[int]], score: Callable = sequence_score) -> int:
    """Index of the draw with the highest summed ``score`` (symmetric, 1 for identical scanpaths) to the
    other draws.

    Identical draws are scored once (weighted by their count), so a peaked model costs few alignments;
    ties (up to rounding) go to the earliest draw, as in the reference.
    """
    n = len(samples)
    if n <= 1:
        return 0
    first: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    for i, s in enumerate(samples):
        key = tuple(s)
        first.setdefault(key, i)
        counts[key] = counts.get(key, 0) + 1
    keys = list(first)
    m = np.eye(len(keys))  # a scanpath's score with itself is 1 (also for two empty ones)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            m[a, b] = m[b, a] = score(keys[a], keys[b])
    c = np.array([counts[k] for k in keys], dtype=float)
    gain = m @ c - 1.0  # minus the draw's own copy
    best = gain.max()
    # the earliest draw among the keys with the best gain (floating sums compared with a tolerance)
    return min(first[k] for k, g in zip(keys, gain) if g >= best - 1e-9)


def sequence_and_multimatch(display: Display, a: Sequence[int], b: Sequence[int]) -> float:
    """Mean of the sequence score and MultiMatch (mean of its four measures) of two object scanpaths."""
    from .metrics import multimatch

    c = display.centres
    mm = multimatch(c[list(a)], c[list(b)], (display.width, display.height)).mean()
    return 0.5 * (sequence_score(a, b) + float(mm))


def mbr_landing_index(display: Display, samples: Sequence[Sequence[int]], landing, rng: np.random.Generator,
                      sequence_weight: float = 0.5) -> int:
    """Index of the draw with the highest summed utility to the other draws, the candidate at its mean landing
    pixels, each other draw at one random landing. Utility: ``sequence_weight`` x sequence score + the rest x
    MultiMatch (0.5: their mean, ``mbr_land``; 0: MultiMatch alone, ``mbr_land_mm``)."""
    return int(np.argmax(mbr_landing_gains(display, samples, landing, rng, sequence_weight)))


def mbr_landing_gains(display: Display, samples: Sequence[Sequence[int]], landing, rng: np.random.Generator,
                      sequence_weight: float = 0.5) -> np.ndarray:
    """Each draw's summed utility to the other draws (:func:`mbr_landing_index`); -inf for an empty draw."""
    from .multimatch_batch import multimatch_against

    size = (display.width, display.height)
    placed = [landing.place(display, p) for p in samples]
    pseudo = [landing.draw(display, p, rng) for p in samples]
    gain = np.full(len(samples), -np.inf)
    for i, p in enumerate(samples):
        if not len(p):
            continue
        others = [j for j, q in enumerate(samples) if j != i and len(q)]
        mm = multimatch_against(placed[i], [pseudo[j] for j in others], size).mean(axis=1)
        gain[i] = sum(sequence_weight * sequence_score(p, samples[j]) + (1 - sequence_weight) * float(m)
                      for j, m in zip(others, mm))
    return gain


def scanpath_log_probs(model, display: Display, paths: Sequence[Sequence[int]]) -> np.ndarray:
    """Log-probability of each scanpath (its fixations, then the end) under the model, with the
    masks of generation (PAD never; the end not at step 1). A path of ``max_len`` fixations, which
    generation cut without an end, is scored without the end."""
    import torch

    from .data import collate
    from .model import generation_masks

    model.eval()
    max_len = model.config.max_len
    items = [(0, list(p)) for p in paths]
    batch = collate([display], items, model.config.appearance)
    with torch.no_grad():
        logits = generation_masks(model(batch))
    n = batch["obj_rows"].shape[1]
    logp = torch.log_softmax(logits, -1)
    targets = batch["targets"].clone()
    for b, p in enumerate(paths):
        if len(p) >= max_len:
            targets[b, len(p)] = n + 1  # no end was generated
    keep = targets != n + 1
    picked = torch.gather(logp, 2, targets.clamp(max=n)[..., None])[..., 0]
    return (picked * keep).sum(1).numpy()


def decode(model, displays: Sequence[Display], decoding: str = "greedy", n: int = 100, temperature: float = 1.0,
           seed: int = 0, landing=None, draws_out: list | None = None) -> list[list[int]]:
    """One scanpath (object indices) per display by ``decoding`` (see the module docstring). A list passed as
    ``draws_out`` receives each display's draws (the evidence of :mod:`.refine`; empty for greedy)."""
    from .train import predict_objects

    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r} (one of {', '.join(DECODINGS)})")
    if decoding in LANDING_DECODINGS and landing is None:
        raise ValueError(f"decoding {decoding!r} needs a landing model (landing.json beside the checkpoint)")
    if decoding == "greedy":
        if draws_out is not None:
            draws_out.extend([] for _ in displays)
        return [p[0] for p in predict_objects(model, displays)]
    out = []
    for k, d in enumerate(displays):
        draws = predict_objects(model, [d], sample=True, n=n, seed=seed + k, temperature=temperature)[0]
        if draws_out is not None:
            draws_out.append(draws)
        if decoding == "mbr":
            out.append(draws[mbr_index(draws)])
        elif decoding == "mbr_mm":
            out.append(draws[mbr_index(draws, lambda a, b, d=d: sequence_and_multimatch(d, a, b))])
        elif decoding in LANDING_DECODINGS:
            out.append(draws[mbr_landing_index(d, draws, landing, np.random.default_rng(seed + k),
                                               sequence_weight=0.5 if decoding == "mbr_land" else 0.0)])
        else:
            out.append(draws[int(np.argmax(scanpath_log_probs(model, d, draws)))])
    return out
