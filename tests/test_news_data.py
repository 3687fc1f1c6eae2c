"""News impressions: the MIND/DKN benchmark converter, impression tables, training/evaluation loaders, POPK on news."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from dataset_converters import ConversionError, ConversionReport, mind
from recbole_llm.news.data import (
    CANDIDATE_LABEL,
    CANDIDATE_MASK,
    CANDIDATES,
    HISTORY,
    IMPRESSION_ID,
    ImpressionEvalDataLoader,
    ImpressionTable,
    ImpressionTrainDataLoader,
    NewsDataError,
    draw_negatives,
    recent_history,
)
from recbole_llm.news.popk import NewsPopk

NEWS_DATA = Path(__file__).resolve().parent / "data" / "news"
MIND = NEWS_DATA / "mind-small-sample"
DKN = NEWS_DATA / "dkn-bing-news"


def _read(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def _convert(tmp_path: Path, behaviors: Path = MIND / "behaviors.tsv", **kwargs):
    kwargs = {
        "valid_from": "2019-11-13T00:00:00",
        "test_from": "2019-11-14T00:00:00",
        "keep_missing_news": True,
        **kwargs,
    }
    return mind.convert_mind_impressions(behaviors, MIND / "news.tsv", tmp_path / "out", name="m", **kwargs)


def test_mind_benchmark_files_split_by_time_with_unique_impressions(tmp_path):
    report = _convert(tmp_path)
    out = tmp_path / "out"
    splits = {s: _read(out / f"m.{s}.inter") for s in mind.SPLITS}
    ids = {s: {row[0] for row in rows} for s, rows in splits.items()}
    assert not (ids["train"] & ids["valid"]) and not (ids["valid"] & ids["test"]) and not (ids["train"] & ids["test"])
    assert max(float(r[4]) for r in splits["train"]) < min(float(r[4]) for r in splits["valid"])
    assert max(float(r[4]) for r in splits["valid"]) < min(float(r[4]) for r in splits["test"])
    histories = _read(out / "m.imp")
    assert {row[0] for row in histories} == ids["train"] | ids["valid"] | ids["test"]
    assert report.counts["train_impressions"] == len(ids["train"])
    assert 0 < report.counts["news_coverage"] <= 1
    assert (out / "m.item").is_file() and (out / "m.yaml").is_file()


def test_max_history_keeps_the_most_recent_clicks(tmp_path):
    _convert(tmp_path, max_history=3)
    full = {row[0].split("\t")[3] for row in [[line] for line in (MIND / "behaviors.tsv").read_text().splitlines()]}
    kept = [row[1].split() for row in _read(tmp_path / "out" / "m.imp")]
    assert max(len(h) for h in kept) == 3
    assert all(" ".join(h) in {" ".join(f.split()[-3:]) for f in full} for h in kept)


def test_recommenders_protocol_uses_the_dev_file_for_valid_and_test(tmp_path):
    report = mind.convert_mind_impressions(
        MIND / "behaviors.tsv",
        MIND / "news.tsv",
        tmp_path / "out",
        name="m",
        dev_behaviors=MIND / "behaviors.tsv",
        protocol="recommenders",
        keep_missing_news=True,
    )
    assert report.counts["valid_impressions"] == report.counts["test_impressions"] == report.counts["train_impressions"]


def _bad_file(tmp_path: Path, line: str) -> Path:
    rows = (MIND / "behaviors.tsv").read_text(encoding="utf-8").splitlines()[:5]
    rows.insert(2, line)
    path = tmp_path / "behaviors.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line, reason",
    [
        ("1\tU1\t11/13/2019 8:00:00 AM\tN1", "malformed behaviors line"),
        ("1\tU1\t11/13/2019 8:00:00 AM\tN1 N2\tN3-0 N4-0", "impression without a click"),
    ],
)
def test_malformed_rows_name_file_and_line_and_are_counted_with_skip_bad(tmp_path, line, reason):
    path = _bad_file(tmp_path, line)
    with pytest.raises(ConversionError, match=f"{path}:3: {reason}"):
        _convert(tmp_path, path)
    assert not (tmp_path / "out").exists()  # nothing half-written
    report = _convert(tmp_path, path, skip_bad=True)
    assert report.dropped[reason] == 1
    assert sum(report.counts[f"{s}_impressions"] for s in mind.SPLITS) == 5


def test_history_id_missing_from_news_table_is_malformed_unless_kept(tmp_path):
    with pytest.raises(ConversionError, match=r"behaviors.tsv:1: history id missing from the news table"):
        _convert(tmp_path, keep_missing_news=False)
    report = _convert(tmp_path, keep_missing_news=False, skip_bad=True)
    assert report.dropped["history id missing from the news table"] > 0


def test_cli_reports_one_line_and_exit_1(tmp_path, capsys):
    path = _bad_file(tmp_path, "broken")
    code = mind.main(
        [
            "--format",
            "benchmark",
            "--behaviors",
            str(path),
            "--news",
            str(MIND / "news.tsv"),
            "--output",
            str(tmp_path / "out"),
            "--test-from",
            "2019-11-14T00:00:00",
            "--keep-missing-news",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}:3" in err[0]


def test_without_dev_file_test_from_is_required(tmp_path):
    with pytest.raises(ConversionError, match="--test-from"):
        mind.convert_mind_impressions(MIND / "behaviors.tsv", None, tmp_path / "out")


def _dkn(tmp_path: Path, folder: str = "d", **kwargs) -> tuple[ConversionReport, Path]:
    out = tmp_path / folder
    return mind.convert_dkn_bing(DKN / "raw_train.txt", DKN / "raw_test.txt", out, name="d", **kwargs), out


def _dkn_split(out: Path) -> dict[str, dict[str, list[tuple[str, str, str]]]]:
    """split -> impression id -> [(user, title, label)] of converted DKN files (titles from d.item)."""
    titles = dict(_read(out / "d.item"))
    splits: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for split in mind.SPLITS:
        for imp, user, item, label, _ in _read(out / f"d.{split}.inter"):
            splits.setdefault(split, {}).setdefault(imp, []).append((user, titles[item], str(int(float(label)))))
    return splits


def _raw_rows(path: Path) -> Counter:
    lines = (line.split("\t") for line in path.read_text().splitlines())
    return Counter((user, " ".join(title.split()), label) for user, title, label, _ in lines)


def test_dkn_training_impressions_never_see_their_own_clicks(tmp_path):
    report, out = _dkn(tmp_path, impression_size=10)
    histories = {row[0]: set(row[1].split()) for row in _read(out / "d.imp")}
    clicks: dict[str, set[str]] = {}
    for row in _read(out / "d.train.inter"):
        if row[3] == "1.0":
            clicks.setdefault(row[0], set()).add(row[2])
    assert clicks and all(not (items & histories[imp]) for imp, items in clicks.items())
    users = {line.split("\t")[0] for line in (DKN / "raw_train.txt").read_text().splitlines()}
    assert report.counts["train_impressions"] > len(users)
    test = _read(out / "d.test.inter")
    assert len({row[1] for row in test}) == report.counts["test_impressions"]  # one test impression per user
    assert len(_read(out / "d.item")) == report.counts["news"]


def test_dkn_validation_is_carved_from_raw_train_and_never_seen_in_training(tmp_path):
    report, out = _dkn(tmp_path)
    splits = _dkn_split(out)
    valid_rows = Counter(row for rows in splits["valid"].values() for row in rows)
    assert valid_rows and not valid_rows - _raw_rows(DKN / "raw_train.txt")  # a sub-multiset of raw_train
    assert not valid_rows.keys() & _raw_rows(DKN / "raw_test.txt").keys()
    held = {(user, title) for user, title, _ in valid_rows}
    train_pairs = {(user, title) for rows in splits["train"].values() for user, title, _ in rows}
    assert not held & train_pairs  # no validation news in the user's training samples
    titles, users = dict(_read(out / "d.item")), {}
    for split_rows in splits.values():
        users.update({imp: rows[0][0] for imp, rows in split_rows.items()})
    for imp, history in _read(out / "d.imp"):
        assert not {(users[imp], titles[item]) for item in history.split()} & held  # nor in any history
    assert all({y for _, _, y in rows} == {"0", "1"} for rows in splits["valid"].values())  # fixture: both labels
    assert len({rows[0][0] for rows in splits["valid"].values()}) == report.counts["valid_impressions"]


def test_dkn_test_split_is_raw_test_unchanged(tmp_path):
    _, out = _dkn(tmp_path)
    test_rows = Counter(row for rows in _dkn_split(out)["test"].values() for row in rows)
    raw = _raw_rows(DKN / "raw_test.txt")
    clicking = {user for user, _, y in raw if y == "1"}
    assert test_rows == Counter({row: n for row, n in raw.items() if row[0] in clicking})


def test_dkn_validation_split_is_reproducible_with_its_seed(tmp_path):
    _, first = _dkn(tmp_path, "a", valid_seed=0)
    _, again = _dkn(tmp_path, "b", valid_seed=0)
    _, other = _dkn(tmp_path, "c", valid_seed=1)
    read = {out: (out / "d.valid.inter").read_text() for out in (first, again, other)}
    assert read[first] == read[again] and read[first] != read[other]
    assert (first / "d.imp").read_text() == (again / "d.imp").read_text()
    assert "dkn_valid_seed: 1" in (other / "d.yaml").read_text()


def test_dkn_valid_share_out_of_range_is_one_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="valid_share must be between 0 and 1"):
        _dkn(tmp_path, valid_share=0.0)


# ------------------------------------------------------------------------------------------ loaders
def _table() -> ImpressionTable:
    """Three impressions: 2 clicks of 6, 1 click of 2 (one negative), 1 click of 4 (shows 1 and 4 again)."""
    items = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 1, 4, 11, 12])
    labels = torch.tensor([1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0], dtype=torch.float)
    return ImpressionTable(
        impression_ids=torch.tensor([10, 20, 30]),
        users=torch.tensor([1, 2, 1]),
        times=torch.tensor([0.0, 3600.0, 7300.0], dtype=torch.float64),
        offsets=torch.tensor([0, 6, 8, 12]),
        items=items,
        labels=labels,
        history=torch.tensor([[0, 5, 6], [0, 0, 0], [1, 2, 3]]),
    )


class _Dataset:
    uid_field = "user_id"


def _config(**kwargs):
    return {
        "npratio": 2,
        "impression_sampling": "per_positive",
        "neg_shortfall": "pad",
        "train_batch_size": 100,
        "eval_batch_size": 2,
        "seed": 1,
        "worker": 0,
        "single_spec": True,
        "MODEL_TYPE": None,
        "transform": None,
        **kwargs,
    }


def _one_batch(loader):
    return next(iter(loader))


def _shown(table: ImpressionTable, impression_id: int) -> tuple[set[int], set[int]]:
    row = int((table.impression_ids == impression_id).nonzero())
    items = table.items[table.offsets[row] : table.offsets[row + 1]]
    labels = table.labels[table.offsets[row] : table.offsets[row + 1]]
    return set(items[labels > 0].tolist()), set(items[labels == 0].tolist())


@pytest.mark.parametrize("shortfall", ["pad", "replace"])
def test_per_positive_batches_one_click_and_in_impression_negatives(shortfall):
    table = _table()
    batch = _one_batch(ImpressionTrainDataLoader(_config(neg_shortfall=shortfall), _Dataset(), table))
    assert batch[CANDIDATES].shape == (4, 3)  # 4 clicks, 1 + npratio candidates each
    assert batch[CANDIDATE_LABEL][:, 0].eq(1).all() and batch[CANDIDATE_LABEL][:, 1:].eq(0).all()
    for imp, candidates, mask in zip(batch[IMPRESSION_ID], batch[CANDIDATES], batch[CANDIDATE_MASK]):
        clicked, negatives = _shown(table, int(imp))
        assert int(candidates[0]) in clicked
        assert set(candidates[1:][mask[1:]].tolist()) <= negatives
        if int(imp) == 20:  # one negative only
            assert int(mask.sum()) == (2 if shortfall == "pad" else 3)
        else:
            assert len(set(candidates[1:].tolist())) == 2  # enough negatives: drawn without replacement


def test_per_impression_batches_all_clicks_and_npratio_negatives_per_click():
    table = _table()
    batch = _one_batch(ImpressionTrainDataLoader(_config(impression_sampling="per_impression"), _Dataset(), table))
    assert len(batch) == 3
    first = int((batch[IMPRESSION_ID] == 10).nonzero())
    assert int(batch[CANDIDATE_LABEL][first].sum()) == 2
    assert int(batch[CANDIDATE_MASK][first].sum()) == 2 + 2 * 2


def test_unknown_sampling_choice_is_one_clear_error():
    with pytest.raises(NewsDataError, match="impression_sampling must be one of per_positive, per_impression"):
        ImpressionTrainDataLoader(_config(impression_sampling="all"), _Dataset(), _table())


def test_eval_batches_hold_whole_impressions_in_shown_order():
    table = _table()
    batches = list(ImpressionEvalDataLoader(_config(), _Dataset(), table))
    assert [len(b) for b in batches] == [2, 1]
    first = batches[0]
    assert first[CANDIDATES][0].tolist() == [1, 2, 3, 4, 5, 6]
    assert first[CANDIDATES][1].tolist() == [7, 8, 0, 0, 0, 0]
    assert first[CANDIDATE_LABEL][1].tolist() == [0, 1, 0, 0, 0, 0]
    assert first[HISTORY].tolist() == [[0, 5, 6], [0, 0, 0]]


def test_recent_history_keeps_the_last_clicks_right_aligned():
    history = torch.tensor([[4, 5, 6, 7, 0], [8, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert recent_history(history, 3).tolist() == [[5, 6, 7], [0, 0, 8], [0, 0, 0]]


def test_draw_negatives_pads_or_replaces_when_short():
    pool, counts, k = torch.tensor([[3, 0, 0], [4, 5, 6]]), torch.tensor([1, 3]), torch.tensor([2, 2])
    padded = draw_negatives(pool, counts, k, "pad", torch.Generator().manual_seed(0))
    assert padded[0].tolist() == [3, 0] and set(padded[1].tolist()) < {4, 5, 6}
    replaced = draw_negatives(pool, counts, k, "replace", torch.Generator().manual_seed(0))
    assert replaced[0].tolist() == [3, 3]


# ------------------------------------------------------------------------------------------ POPK on news
def test_popk_uses_training_clicks_of_earlier_buckets_only_and_skips_the_impression():
    table = _table()  # clicks: items 1, 4 at t=0; 8 at t=3600; 4 at t=7300 (hour buckets 0, 1, 2)
    popk = NewsPopk(table, n_items=13, popk=2, bucket=3600)
    rows = torch.tensor([0, 1, 2])
    extra = popk.extra_negatives(table, rows, torch.tensor([[1], [8], [4]]))
    assert extra[0].tolist() == [0, 0]  # nothing clicked before the first bucket
    assert extra[1].tolist() == [1, 4]  # bucket 0's clicks; 8 is clicked in the current bucket: not counted
    assert extra[2].tolist() == [8, 0]  # 1 and 4 are shown in this impression: skipped
    future = ImpressionTable(**{**table.__dict__, "labels": torch.cat([table.labels[:8], torch.ones(4)])})
    changed = NewsPopk(future, n_items=13, popk=2, bucket=3600).extra_negatives(
        table, rows[:2], torch.tensor([[1], [8]])
    )
    assert changed.tolist() == extra[:2].tolist()  # later clicks never reach earlier impressions


def test_popk_appends_negatives_to_training_batches():
    table = _table()
    popk = NewsPopk(table, n_items=13, popk=2, bucket=3600)
    batch = _one_batch(ImpressionTrainDataLoader(_config(), _Dataset(), table, popk=popk))
    assert batch[CANDIDATES].shape == (4, 5)
    assert batch[CANDIDATE_LABEL][:, 3:].eq(0).all()


def test_real_mind_sample_split_and_coverage(shared_datasets, tmp_path):
    folder = shared_datasets / "mind-small-sample"
    report = mind.convert_mind_impressions(
        folder / "behaviors.tsv",
        folder / "news.tsv",
        tmp_path / "m",
        valid_from="2019-11-13T00:00:00",
        test_from="2019-11-14T00:00:00",
        keep_missing_news=True,
    )
    counts = report.counts
    assert (counts["train_impressions"], counts["valid_impressions"], counts["test_impressions"]) == (3058, 974, 968)
    assert counts["news_coverage"] == pytest.approx(0.037, abs=0.001)  # the README's "about 4%"


def test_real_dkn_split_counts(shared_datasets, tmp_path):
    """The counts that properties/dataset/dkn-bing-news.yaml states (valid carved from raw_train, seed 0)."""
    folder = shared_datasets / "dkn-bing-news"
    report = mind.convert_dkn_bing(folder / "raw_train.txt", folder / "raw_test.txt", tmp_path / "d", name="d")
    counts = report.counts
    assert [counts[f"{split}_impressions"] for split in mind.SPLITS] == [1006, 452, 101]
    assert [counts[f"{split}_rows"] for split in mind.SPLITS] == [7783, 1308, 416]
    assert (counts["users_without_valid"], counts["valid_news"], counts["valid_news_shown_in_train"]) == (17, 1252, 221)
