"""Converters on the real shared files: counts, malformed lines, empty reviews, literal ids."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from dataset_converters import amazon, atomic, mind, seqrec, unisrec
from dataset_converters._common import REPORT_FILE, ConversionError, atomic_output_dir, clean_text


def read_atomic(path: Path) -> pd.DataFrame:
    """Read an atomic file the way RecBole's Dataset._load_feat does."""
    frame = pd.read_csv(path, delimiter="\t", dtype=str, engine="python")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def raw_json_lines(path: Path, n: int | None = None) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return lines[:n] if n else lines


@pytest.fixture(scope="module")
def beauty_raw(shared_datasets) -> Path:
    return shared_datasets / "amazon-2018-5core" / "All_Beauty_5.json.gz"


@pytest.fixture(scope="module")
def beauty_converted(beauty_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "amazon-beauty"
    return amazon.convert_amazon(beauty_raw, out, kcore=0), out


def test_amazon_beauty_counts_match_the_raw_file(beauty_converted, beauty_raw):
    report, out = beauty_converted
    records = [json.loads(line) for line in raw_json_lines(beauty_raw)]
    pairs = {(r["reviewerID"], r["asin"]) for r in records}
    assert report.rows_read == len(records) == 5269
    assert report.rows_kept == len(pairs) == 4092
    assert report.dropped == {"duplicate (user, item) pair (kept the earliest review)": 5269 - 4092}
    assert report.counts["users"] == 991 and report.counts["items"] == 85
    inter = read_atomic(out / "amazon-beauty.inter")
    assert len(inter) == 4092
    assert set(zip(inter.user_id, inter.item_id)) == pairs
    assert json.loads((out / REPORT_FILE).read_text())["rows_kept"] == 4092
    assert not list(out.parent.glob(".amazon-beauty.tmp-*")), "temporary folder left behind"


def test_amazon_review_text_round_trips_through_recbole_reader(beauty_converted, beauty_raw):
    _, out = beauty_converted
    inter = read_atomic(out / "amazon-beauty.inter")
    by_pair = {(u, i): t for u, i, t in zip(inter.user_id, inter.item_id, inter.review_text)}
    records = [json.loads(line) for line in raw_json_lines(beauty_raw)]
    earliest: dict = {}
    for r in records:
        key = (r["reviewerID"], r["asin"])
        if key not in earliest or r["unixReviewTime"] < earliest[key]["unixReviewTime"]:
            earliest[key] = r
    quoted = [k for k, r in earliest.items() if '"' in r.get("reviewText", "")]
    assert len(quoted) > 10  # real reviews with quotes, which RecBole's CSV reader must not mangle
    for key, record in earliest.items():
        expected = clean_text(record.get("reviewText"))
        got = by_pair[key]
        assert (got if isinstance(got, str) else "") == expected


def test_amazon_empty_review_is_kept_with_empty_text(beauty_converted, beauty_raw):
    report, out = beauty_converted
    inter = read_atomic(out / "amazon-beauty.inter")
    empty = inter[inter.review_text.isna()]
    assert len(empty) == report.counts["reviews_without_text"] == 4
    assert (empty.summary == "Five Stars").all()  # the summary survives; only the review is empty


def test_amazon_gift_cards_with_metadata(shared_datasets, tmp_path):
    folder = shared_datasets / "amazon-2018-5core"
    report = amazon.convert_amazon(
        folder / "Gift_Cards_5.json.gz", tmp_path / "gc", meta_path=folder / "meta_Gift_Cards.json.gz", kcore=0
    )
    assert (report.rows_read, report.rows_kept) == (2972, 2965)
    assert report.counts["items"] == 148 and report.counts["items_without_metadata"] == 0
    assert report.counts["meta_rows_read"] == 1547
    item = read_atomic(tmp_path / "gc" / "gc.item")
    assert len(item) == 148 and item.item_id.is_unique
    row = item.set_index("item_id").loc["B004Q7CK9M"]
    assert row.title == "Amazon.com Gift Card in a Greeting Card (Various Designs)"
    assert row.brand == "Amazon" and row.categories == "Gift Cards" and float(row.price) == 40.0
    assert row.description.startswith("Amazon.com Gift Cards are the perfect way")


def test_amazon_malformed_line_fails_with_file_and_line_or_is_skipped(beauty_raw, tmp_path):
    lines = raw_json_lines(beauty_raw, 20)
    lines.insert(3, lines[3][: len(lines[3]) // 2])  # a truncated record becomes line 4
    raw = tmp_path / "broken.json"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=r"broken\.json:4: malformed line"):
        amazon.convert_amazon(raw, tmp_path / "out", kcore=0)
    assert not (tmp_path / "out").exists(), "a failed conversion must not leave output"
    report = amazon.convert_amazon(raw, tmp_path / "out", skip_bad=True, kcore=0)
    assert report.rows_read == 21 and report.dropped["malformed line in broken.json"] == 1
    assert amazon.main(["--input", str(raw), "--output", str(tmp_path / "cli")]) == 1  # CLI: error, exit 1


def test_amazon_2023_format_matches_2018(beauty_raw, tmp_path):
    records = [json.loads(line) for line in raw_json_lines(beauty_raw, 300)]
    as_2023 = [
        {
            "user_id": r["reviewerID"],
            "parent_asin": r["asin"],
            "asin": r["asin"],
            "rating": r["overall"],
            "text": r.get("reviewText", ""),
            "title": r.get("summary", ""),
            "timestamp": r["unixReviewTime"] * 1000,
        }
        for r in records
    ]
    (tmp_path / "r2018.json").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    with gzip.open(tmp_path / "r2023.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in as_2023))
    old = amazon.convert_amazon(tmp_path / "r2018.json", tmp_path / "a")
    new = amazon.convert_amazon(tmp_path / "r2023.jsonl.gz", tmp_path / "b")
    assert new.counts["format"] == "2023" and old.counts["format"] == "2014/2018"
    assert (tmp_path / "a" / "a.inter").read_text() == (tmp_path / "b" / "b.inter").read_text()


def test_amazon_min_rating_and_kcore(beauty_raw, tmp_path):
    report = amazon.convert_amazon(beauty_raw, tmp_path / "k", kcore=5, min_rating=4)
    inter = read_atomic(tmp_path / "k" / "k.inter")
    assert (inter.rating.astype(float) >= 4).all()
    assert min(Counter(inter.user_id).values()) >= 5 and min(Counter(inter.item_id).values()) >= 5
    assert report.rows_read == report.rows_kept + sum(report.dropped.values())
    assert report.dropped["rating below 4"] > 0 and report.dropped["k-core filter (users >= 5, items >= 5)"] > 0


def test_seqrec_lastfm_counts_and_literal_order(shared_datasets, tmp_path):
    report = seqrec.convert_seqrec(shared_datasets / "seqrec" / "LastFM.txt", tmp_path / "lf")
    assert report.counts["users"] == 1090 and report.counts["items"] == 3646
    assert report.counts["interactions"] == 52551 and report.counts["literal_item_ids"]
    inter = read_atomic(tmp_path / "lf" / "lf.inter")
    first_seen = list(dict.fromkeys(inter.item_id.astype(int)))
    assert first_seen == list(range(1, 3647))  # RecBole's first-appearance remap gives k -> k
    times = inter.timestamp.astype(float)
    assert times.is_monotonic_increasing and times.is_unique


def test_seqrec_reorders_rows_when_file_order_is_not_literal(tmp_path):
    raw = tmp_path / "seq.txt"
    raw.write_text("1 3 1\n2 2 3\n", encoding="utf-8")
    report = seqrec.convert_seqrec(raw, tmp_path / "s")
    inter = read_atomic(tmp_path / "s" / "s.inter")
    assert list(dict.fromkeys(inter.item_id.astype(int))) == [1, 2, 3]
    assert report.counts["rows_reordered_for_literal_ids"]
    # sequence order survives in the timestamps
    user1 = inter[inter.user_id == "1"].sort_values("timestamp", key=lambda s: s.astype(float))
    assert list(user1.item_id) == ["3", "1"]


def test_seqrec_malformed_line(shared_datasets, tmp_path):
    lines = (shared_datasets / "seqrec" / "LastFM.txt").read_text().splitlines()[:5]
    lines[2] = lines[2] + " x12"
    raw = tmp_path / "bad.txt"
    raw.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConversionError, match=r"bad\.txt:3: field 'item id': malformed line"):
        seqrec.convert_seqrec(raw, tmp_path / "o")
    report = seqrec.convert_seqrec(raw, tmp_path / "o", skip_bad=True)
    assert report.rows_kept == 4 and sum(report.dropped.values()) == 1


def test_unisrec_scientific_counts(shared_datasets, tmp_path):
    report = unisrec.convert_unisrec(shared_datasets / "amazon-2018-scientific", tmp_path / "sci", prefix="Scientific")
    assert (report.counts["users"], report.counts["items"], report.counts["interactions"]) == (8442, 4385, 59384)
    assert report.counts["items_with_text"] == 4385
    assert report.counts["test_rows"] == report.counts["valid_rows"] == 8442
    item = read_atomic(tmp_path / "sci" / "sci.item")
    assert item.text.str.len().min() > 10


def test_unisrec_malformed_line(shared_datasets, tmp_path):
    source = shared_datasets / "amazon-2018-scientific"
    for path in source.glob("Scientific.*"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    lines = (tmp_path / "Scientific.valid.inter").read_text().splitlines()
    lines[5] = lines[5].replace("\t", "\t99999x ", 1)
    (tmp_path / "Scientific.valid.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConversionError, match=r"Scientific\.valid\.inter:6:"):
        unisrec.convert_unisrec(tmp_path, tmp_path / "out", prefix="Scientific")


def test_mind_sample_counts(shared_datasets, tmp_path):
    folder = shared_datasets / "mind-small-sample"
    report = mind.convert_mind(folder / "behaviors.tsv", folder / "news.tsv", tmp_path / "m")
    rows = [line.split("\t") for line in (folder / "behaviors.tsv").read_text(encoding="utf-8").splitlines()]
    shown = [tok for r in rows for tok in r[4].split()]
    assert report.rows_read == report.counts["impressions"] == 5000
    assert report.counts["impression_rows"] == len(shown) == 189359
    assert report.counts["clicks"] == sum(tok.endswith("-1") for tok in shown)
    assert report.counts["news_rows"] == 2000
    inter = read_atomic(tmp_path / "m" / "m.inter")
    assert len(inter) == len(shown) and set(inter.label) == {"0.0", "1.0"}
    first = inter[inter.impression_id == rows[0][0]]
    assert list(first.item_id) == [tok.rsplit("-", 1)[0] for tok in rows[0][4].split()]


def test_mind_malformed_line(shared_datasets, tmp_path):
    lines = (shared_datasets / "mind-small-sample" / "behaviors.tsv").read_text(encoding="utf-8").splitlines()[:4]
    lines[1] = lines[1].rsplit("\t", 1)[0] + "\tN1-x N2-0"
    raw = tmp_path / "behaviors.tsv"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=r"behaviors\.tsv:2: impression 'N1-x'"):
        mind.convert_mind(raw, None, tmp_path / "o")
    assert mind.convert_mind(raw, None, tmp_path / "o", skip_bad=True).counts["impressions"] == 3


def test_atomic_copy_checks_columns(shared_datasets, tmp_path):
    report = atomic.copy_atomic(shared_datasets / "lastfm", tmp_path / "fm")
    assert report.rows_read == 64286 and sorted(p.name for p in (tmp_path / "fm").iterdir()) == [
        REPORT_FILE,
        "fm.inter",
        "fm.item",
        "fm.yaml",
    ]
    src = tmp_path / "src" / "lastfm"
    src.mkdir(parents=True)
    lines = (shared_datasets / "lastfm" / "lastfm.inter").read_text().splitlines()[:10]
    lines[7] += "\textra"
    (src / "lastfm.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConversionError, match=r"lastfm\.inter:8: 5 columns"):
        atomic.copy_atomic(src, tmp_path / "bad")


def test_atomic_output_dir_replaces_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "ds"
    with pytest.raises(RuntimeError), atomic_output_dir(target) as tmp:
        (tmp / "ds.inter").write_text("half")
        raise RuntimeError("conversion failed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.mkdir()
    (target / "ds.item").write_text("stale")
    with pytest.raises(ConversionError, match="not empty; pass --overwrite"), atomic_output_dir(target) as tmp:
        pass
    with atomic_output_dir(target, overwrite=True) as tmp:
        (tmp / "ds.inter").write_text("complete")
    assert [p.name for p in target.iterdir()] == ["ds.inter"], "the stale .item must not survive (never merged)"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_amazon_2014_loose_metadata_and_cli(shared_datasets, tmp_path):
    """2014 metadata lines are Python literals, not JSON; the CLI runs as ``python -m``."""
    import ast
    import subprocess
    import sys

    folder = shared_datasets / "amazon-2018-5core"
    records = [json.loads(line) for line in raw_json_lines(folder / "meta_Gift_Cards.json.gz")]
    (tmp_path / "meta_loose.json").write_text("\n".join(repr(r) for r in records), encoding="utf-8")
    assert ast.literal_eval(repr(records[0])) == records[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(repr(records[0]))
    out = tmp_path / "gc"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataset_converters.amazon",
            "--input",
            str(folder / "Gift_Cards_5.json.gz"),
            "--meta",
            str(tmp_path / "meta_loose.json"),
            "--output",
            str(out),
            "--kcore",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "rows read: 2,972, kept: 2,965" in result.stderr
    reference = amazon.convert_amazon(
        folder / "Gift_Cards_5.json.gz",
        tmp_path / "ref",
        meta_path=folder / "meta_Gift_Cards.json.gz",
        name="gc",
        kcore=0,
    )
    assert reference.rows_kept == 2965
    assert (out / "gc.item").read_text() == (tmp_path / "ref" / "gc.item").read_text()


# ---------------------------------------------------------------------------------------------
# Bad inputs: one line on stderr, non-zero exit, the output folder byte-identical to before.
# Small generated inputs, so these run in a clean clone.

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def make_reviews(users: int = 12, items: int = 8, per_user: int = 6) -> list[dict]:
    """2018-style review records: user u rated items u..u+per_user (mod items), one day apart."""
    rows = []
    for u in range(users):
        for k in range(per_user):
            rows.append(
                {
                    "reviewerID": f"U{u}",
                    "asin": f"I{(u + k) % items}",
                    "overall": float(1 + (u + k) % 5),
                    "unixReviewTime": 1_500_000_000 + 86_400 * (u * per_user + k),
                    "reviewText": f"review {u}-{k}",
                    "summary": f"summary {k}",
                }
            )
    return rows


def write_gz(path: Path, records: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (and the folder's siblings' names) with its bytes."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    files["<siblings>"] = "\n".join(sorted(p.name for p in folder.parent.iterdir())).encode()
    return files


@pytest.fixture
def previous_output(tmp_path) -> Path:
    """An output folder holding an earlier, complete conversion."""
    raw = write_gz(tmp_path / "good.json.gz", make_reviews())
    out = tmp_path / "out" / "ds"
    assert amazon.main(["--input", str(raw), "--output", str(out)]) == 0
    return out


def run_cli_fails(capsys, argv: list[str]) -> str:
    """Run the amazon CLI, expect exit 1 and exactly one stderr line; return it."""
    capsys.readouterr()
    assert amazon.main(argv) == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1, err_lines
    assert "Traceback" not in err_lines[0]
    return err_lines[0]


def test_truncated_gzip_is_one_line_with_byte_offset(tmp_path, previous_output, capsys):
    good = write_gz(tmp_path / "full.json.gz", make_reviews(40))
    data = good.read_bytes()
    raw = tmp_path / "cut.json.gz"
    raw.write_bytes(data[: len(data) // 2])
    before = snapshot(previous_output)
    line = run_cli_fails(capsys, ["--input", str(raw), "--output", str(previous_output), "--overwrite"])
    assert "cut.json.gz: byte " in line and "ends early" in line and "--skip-bad" in line
    assert snapshot(previous_output) == before


def test_truncated_gzip_with_skip_bad_keeps_what_was_read(tmp_path):
    good = write_gz(tmp_path / "full.json.gz", make_reviews(40))
    data = good.read_bytes()
    raw = tmp_path / "cut.json.gz"
    raw.write_bytes(data[: len(data) // 2])
    report = amazon.convert_amazon(raw, tmp_path / "kept", skip_bad=True, kcore=0)
    with gzip.open(raw, "rt") as handle:  # the complete lines before the cut
        readable: list[str] = []
        with pytest.raises(EOFError):
            readable.extend(handle)
    assert 0 < report.rows_read == sum(1 for line in readable if line.endswith("\n"))
    assert any(key.startswith("truncated input cut.json.gz") for key in report.counts)
    assert json.loads((tmp_path / "kept" / REPORT_FILE).read_text())["rows_read"] == report.rows_read


def test_malformed_line_is_one_line_naming_file_and_line(tmp_path, previous_output, capsys):
    lines = [json.dumps(r) for r in make_reviews()]
    lines[4] = lines[4][:20]
    raw = tmp_path / "bad.json"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = snapshot(previous_output)
    line = run_cli_fails(capsys, ["--input", str(raw), "--output", str(previous_output), "--overwrite"])
    assert "bad.json:5: malformed line" in line and "--skip-bad" in line
    assert snapshot(previous_output) == before


@pytest.mark.parametrize("missing", ["asin", "reviewerID", "overall", "unixReviewTime"])
def test_missing_field_is_named(tmp_path, previous_output, capsys, missing):
    records = make_reviews()
    del records[7][missing]
    raw = write_gz(tmp_path / "missing.json.gz", records)
    before = snapshot(previous_output)
    line = run_cli_fails(capsys, ["--input", str(raw), "--output", str(previous_output), "--overwrite"])
    assert f"missing.json.gz:8: field '{missing}': missing" in line
    assert snapshot(previous_output) == before


def test_metadata_row_without_asin_names_the_field(tmp_path, capsys):
    raw = write_gz(tmp_path / "r.json.gz", make_reviews())
    meta = write_gz(tmp_path / "meta.json.gz", [{"asin": "I0", "title": "a"}, {"title": "no id"}])
    line = run_cli_fails(capsys, ["--input", str(raw), "--meta", str(meta), "--output", str(tmp_path / "o")])
    assert "meta.json.gz:2: field 'asin': missing" in line
    assert not (tmp_path / "o").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    raw = write_gz(tmp_path / "r.json.gz", make_reviews())
    target = tmp_path / "taken"
    target.write_text("not a folder")
    line = run_cli_fails(capsys, ["--input", str(raw), "--output", str(target)])
    assert "existing file" in line and str(target) in line
    assert target.read_text() == "not a folder"


def test_existing_folder_needs_overwrite_which_replaces_it_whole(tmp_path, previous_output, capsys):
    raw = write_gz(tmp_path / "other.json.gz", make_reviews(users=15))
    (previous_output / "ds.item").write_text("item_id:token\nstale\n")  # left from an earlier conversion
    before = snapshot(previous_output)
    line = run_cli_fails(capsys, ["--input", str(raw), "--output", str(previous_output)])
    assert "not empty" in line and "--overwrite" in line
    assert snapshot(previous_output) == before
    assert amazon.main(["--input", str(raw), "--output", str(previous_output), "--overwrite"]) == 0
    assert sorted(p.name for p in previous_output.iterdir()) == [REPORT_FILE, "ds.inter", "ds.yaml"]
    assert len(read_atomic(previous_output / "ds.inter")) == 15 * 6


def test_failure_while_writing_leaves_the_previous_output(tmp_path, previous_output, monkeypatch):
    raw = write_gz(tmp_path / "r.json.gz", make_reviews(users=20))
    before = snapshot(previous_output)
    real_write = amazon.write_atomic_file

    def write_then_fail(path, header, rows):
        real_write(path, header, list(rows)[:3])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(amazon, "write_atomic_file", write_then_fail)
    with pytest.raises(OSError, match="simulated"):
        amazon.convert_amazon(raw, previous_output, overwrite=True)
    assert snapshot(previous_output) == before


def test_killed_conversion_leaves_the_previous_output(tmp_path, previous_output):
    """SIGKILL in the middle of writing the .inter: nothing changes; the next run removes the leftovers."""
    import subprocess
    import sys

    raw = write_gz(tmp_path / "r.json.gz", make_reviews(users=20))
    before = snapshot(previous_output)
    script = (
        "import os, signal, sys\n"
        "from dataset_converters import amazon\n"
        "real = amazon.write_atomic_file\n"
        "def killed(path, header, rows):\n"
        "    real(path, header, list(rows)[:5])\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "amazon.write_atomic_file = killed\n"
        "sys.exit(amazon.main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "--input", str(raw), "--output", str(previous_output), "--overwrite"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == -9
    after = snapshot(previous_output)
    leftovers = [n for n in after.pop("<siblings>").decode().split("\n") if ".tmp-" in n]
    before.pop("<siblings>")
    assert after == before and len(leftovers) == 1
    amazon.convert_amazon(raw, previous_output, overwrite=True)
    assert [p.name for p in previous_output.parent.iterdir()] == ["ds"]


def test_cli_as_subprocess_prints_one_line_and_no_traceback(tmp_path):
    import subprocess
    import sys

    raw = tmp_path / "bad.json"
    raw.write_text('{"reviewerID": "u", "asin": "i", "overall": "five", "unixReviewTime": 1}\n')
    result = subprocess.run(
        [sys.executable, "-m", "dataset_converters.amazon", "--input", str(raw), "--output", str(tmp_path / "o")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {raw}:1: field 'overall': 'five' is not a number; pass --skip-bad to skip such lines"
    ]


# ---------------------------------------------------------------------------------------------
# Text cleaning, k-core, the written yaml


def test_every_text_field_is_cleaned_the_same_way_and_counted(tmp_path):
    records = make_reviews(users=6, items=3, per_user=3)
    records[0]["reviewText"] = "<p>Great&nbsp;card &amp; fast</p>\n\n"
    records[1]["summary"] = "  "
    raw = write_gz(tmp_path / "r.json.gz", records)
    meta = write_gz(
        tmp_path / "m.json.gz",
        [
            {
                "asin": "I0",
                "title": '<span class="a-size-medium">Gift &amp; Card</span>',
                "category": ["Gift Cards", "<b>Holiday</b>"],
                "brand": "&lt;b&gt;Acme&lt;/b&gt;",
                "description": ["<div>Line one</div>", "Line\ttwo"],
            },
            {"asin": "I1", "title": "Plain", "category": []},
        ],
    )
    report = amazon.convert_amazon(raw, tmp_path / "o", meta_path=meta, kcore=0)
    item = read_atomic(tmp_path / "o" / "o.item").set_index("item_id")
    assert item.loc["I0", "title"] == "Gift & Card"
    assert item.loc["I0", "categories"] == "Gift Cards, Holiday"
    assert item.loc["I0", "brand"] == "Acme"
    assert item.loc["I0", "description"] == "Line one Line two"
    inter = read_atomic(tmp_path / "o" / "o.inter")
    assert "Great card & fast" in set(inter.review_text)
    counts = json.loads((tmp_path / "o" / REPORT_FILE).read_text())["text_fields"]
    assert counts == {name: dict(c) for name, c in report.text_fields.items()}
    assert counts["title"]["html_cleaned"] == 1 and counts["brand"]["html_cleaned"] == 1
    assert counts["review_text"]["html_cleaned"] == 1 and counts["summary"]["empty"] == 1
    assert counts["brand"]["empty"] == 1  # I1 has no brand


def test_kcore_runs_after_dedup_to_a_fixed_point(tmp_path):
    records = make_reviews(users=12, items=8, per_user=5)
    # U0 repeats one item: 5 rows but 4 distinct items -> below 5-core once deduplicated.
    records = [r for r in records if not (r["reviewerID"] == "U0" and r["asin"] == "I4")]
    records.append(dict(records[0], unixReviewTime=records[0]["unixReviewTime"] + 5))
    raw = write_gz(tmp_path / "Cat_5.json.gz", records)
    report = amazon.convert_amazon(raw, tmp_path / "k")  # published as 5-core: k-core on by default
    inter = read_atomic(tmp_path / "k" / "k.inter")
    assert "U0" not in set(inter.user_id)
    assert min(Counter(inter.user_id).values()) >= 5 and min(Counter(inter.item_id).values()) >= 5
    assert report.dropped["duplicate (user, item) pair (kept the earliest review)"] == 1
    removed = report.dropped["k-core filter (users >= 5, items >= 5)"]
    assert removed >= 4 and report.rows_read == report.rows_kept + sum(report.dropped.values())
    plain = write_gz(tmp_path / "Cat.json.gz", records)
    assert amazon.convert_amazon(plain, tmp_path / "n").counts["kcore"] == {"users": 0, "items": 0}
    assert amazon.convert_amazon(raw, tmp_path / "off", kcore=0).rows_kept == len(records) - 1


def test_written_yaml_describes_the_files(tmp_path):
    import yaml

    raw = write_gz(tmp_path / "r.json.gz", make_reviews())
    meta = write_gz(tmp_path / "m.json.gz", [{"asin": "I0", "title": "a"}])
    amazon.convert_amazon(raw, tmp_path / "ds", meta_path=meta)
    settings = yaml.safe_load((tmp_path / "ds" / "ds.yaml").read_text())
    assert settings["load_col"] == {
        "inter": [h.split(":")[0] for h in amazon.INTER_HEADER],
        "item": [h.split(":")[0] for h in amazon.ITEM_HEADER],
    }
    assert settings["eval_args"] == {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    }
    assert settings["TIME_FIELD"] == "timestamp" and settings["RATING_FIELD"] == "rating"
    assert settings["item_text_fields"] == amazon.ITEM_TEXT_FIELDS
    assert settings["inter_text_fields"] == amazon.INTER_TEXT_FIELDS


# ---------------------------------------------------------------------------------------------
# Sequential converter: S3-Rec item json, repeated pairs, seeded user sample, id renumbering


def test_seqrec_item_json_repeats_and_dedup(tmp_path):
    raw = tmp_path / "seq.txt"
    raw.write_text("1 1 2 1 3\n2 2 3 4 3\n3 1 4\n", encoding="utf-8")
    item_json = tmp_path / "Toy.item.json"
    item_json.write_text(
        json.dumps(
            {
                "0": {"title": "<b>One</b>", "categories": ["A", "B"]},
                "1": {"title": "Two &amp; more"},
                "3": {"title": "Four"},
            }
        )
    )
    report = seqrec.convert_seqrec(raw, tmp_path / "s", item_json=item_json)
    assert report.counts["repeated_user_item_rows"] == 2 and report.counts["users_whose_test_item_occurs_earlier"] == 1
    assert report.counts["interactions"] == 10 and report.counts["items_without_text"] == 1  # item 3 has no key 2
    item = read_atomic(tmp_path / "s" / "s.item").set_index("item_id")
    assert item.loc["1", "title"] == "One" and item.loc["1", "categories"] == "A B"
    assert item.loc["2", "title"] == "Two & more" and item.loc["4", "title"] == "Four"  # id = key + 1
    deduped = seqrec.convert_seqrec(raw, tmp_path / "d", dedup=True)
    inter = read_atomic(tmp_path / "d" / "d.inter")
    assert len(inter) == 8 and not inter.duplicated(["user_id", "item_id"]).any()
    assert deduped.dropped["repeated (user, item) row (--dedup kept the first)"] == 2
    user1 = inter[inter.user_id == "1"].sort_values("timestamp", key=lambda s: s.astype(float))
    assert list(user1.item_id) == ["1", "2", "3"]


def test_seqrec_item_json_errors_are_one_line(tmp_path, capsys):
    raw = tmp_path / "seq.txt"
    raw.write_text("1 1 2\n", encoding="utf-8")
    bad = tmp_path / "bad.item.json"
    bad.write_text(json.dumps({"0": {"name": "x"}}))
    capsys.readouterr()
    assert seqrec.main(["--input", str(raw), "--output", str(tmp_path / "o"), "--item-json", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}:key '0': field 'title': missing"]
    assert not (tmp_path / "o").exists()


def test_seqrec_user_sample_is_seeded_and_ids_choice_is_reported(tmp_path):
    lines = [f"{u} " + " ".join(str(1 + (u * 7 + k * 3) % 40) for k in range(6)) for u in range(1, 61)]
    raw = tmp_path / "seq.txt"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = seqrec.convert_seqrec(raw, tmp_path / "a", sample_users_n=20, seed=3)
    again = seqrec.convert_seqrec(raw, tmp_path / "b", sample_users_n=20, seed=3)
    other = seqrec.convert_seqrec(raw, tmp_path / "c", sample_users_n=20, seed=4)
    inter = {k: read_atomic(tmp_path / k / f"{k}.inter") for k in "abc"}
    assert set(inter["a"].user_id) == set(inter["b"].user_id) and set(inter["a"].user_id) != set(inter["c"].user_id)
    assert first.counts["users"] == again.counts["users"] == other.counts["users"] == 20
    assert first.dropped["user not in the sample of 20 (seed 3)"] == 40
    kept_users = set(inter["a"].user_id)
    assert kept_users <= {line.split()[0] for line in lines}  # ids kept
    renumbered = seqrec.convert_seqrec(raw, tmp_path / "r", sample_users_n=20, seed=3, ids="first-appearance")
    r_inter = read_atomic(tmp_path / "r" / "r.inter")
    assert sorted(set(r_inter.user_id.astype(int))) == list(range(1, 21))
    assert sorted(set(r_inter.item_id.astype(int))) == list(range(1, renumbered.counts["items"] + 1))
    for report in (first, renumbered):
        assert 0 <= report.counts["test_targets_previous_id_plus_1"] <= 1
        assert json.loads((tmp_path / report.name / REPORT_FILE).read_text())["counts"]["ids"] in seqrec.ID_CHOICES


def test_previous_plus_one_share_counts_internal_ids():
    # user 1: 1 -> 2 (consecutive), user 2: 3 -> 1 (not); internal ids by first appearance = tokens here.
    rows = [(1, 1, 1), (1, 2, 2), (2, 3, 3), (2, 1, 4)]
    assert seqrec.previous_plus_one_share(rows) == 0.5


# ---------------------------------------------------------------------------------------------
# End to end on the real files: the written yaml is all a run needs (Config reads
# <data_path>/<dataset>/<dataset>.yaml by itself; no yaml is passed here).


def test_gift_cards_converted_then_lightgcn_with_leave_one_out_by_time(shared_datasets, tmp_path):
    from recbole_llm.config import Config
    from recbole_llm.data import create_dataset, data_preparation
    from recbole_llm.quick_start import run_recbole_llm

    folder = shared_datasets / "amazon-2018-5core"
    out = tmp_path / "data" / "gift"
    assert (
        amazon.main(
            [
                "--input",
                str(folder / "Gift_Cards_5.json.gz"),
                "--meta",
                str(folder / "meta_Gift_Cards.json.gz"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "gift.yaml").is_file()
    settings = {
        "epochs": 1,
        "show_progress": False,
        "state": "ERROR",
        "use_gpu": False,
        "train_batch_size": 4096,
        "data_path": str(tmp_path / "data"),
    }
    config = Config("LightGCN", "gift", config_dict=settings)
    dataset = create_dataset(config)
    _, _, test = data_preparation(config, dataset)
    users = json.loads((out / REPORT_FILE).read_text())["counts"]["users"]
    assert test.dataset.inter_num == users  # one test target per user: leave-one-out
    times = dataset.inter_feat[dataset.time_field]
    last_time = {}
    for user, time in zip(dataset.inter_feat[dataset.uid_field].tolist(), times.tolist()):
        last_time[user] = max(time, last_time.get(user, time))
    test_rows = test.dataset.inter_feat
    assert all(
        t == last_time[u] for u, t in zip(test_rows[dataset.uid_field].tolist(), test_rows[dataset.time_field].tolist())
    )
    result = run_recbole_llm("LightGCN", "gift", config_dict=settings, saved=False)
    assert 0 <= result["test_result"]["ndcg@10"] <= 1


def test_lastfm_sample_converted_then_sasrec(shared_datasets, tmp_path):
    from recbole_llm.quick_start import run_recbole_llm

    out = tmp_path / "data" / "lastfm300"
    assert (
        seqrec.main(
            [
                "--input",
                str(shared_datasets / "seqrec" / "LastFM.txt"),
                "--output",
                str(out),
                "--sample-users",
                "300",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    # train_neg_sample_args: None is SASRec's CE loss, not the dataset (BPR on the same files needs negatives);
    # RecBole 1.2.1 asks for it on the command line for every CE model.
    settings = {
        "epochs": 1,
        "show_progress": False,
        "state": "ERROR",
        "use_gpu": False,
        "train_batch_size": 2048,
        "data_path": str(tmp_path / "data"),
        "MAX_ITEM_LIST_LENGTH": 10,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "n_heads": 1,
        "train_neg_sample_args": None,
    }
    result = run_recbole_llm("SASRec", "lastfm300", config_dict=settings, saved=False)
    assert 0 <= result["test_result"]["ndcg@10"] <= 1
