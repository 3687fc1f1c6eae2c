"""Named datasets: atomic files in ``data_path`` if present, else converted from raw files.

``--dataset=amazon-beauty`` (or any name in :data:`NAMED_DATASETS`) first looks for
``<data_path>/<name>.inter`` as RecBole does. When it is missing, the raw public files are looked
up in the raw-data folder (config ``raw_data_path``, else the environment variable
``RECBOLE_LLM_RAW_DATA``), in the layout of ``../shared/datasets`` (``amazon-2018-5core/...``) or
flat, converted by :mod:`dataset_converters` into a temporary folder and moved into ``data_path``.
With ``download_raw: True`` a missing raw file is downloaded from its official address (progress
bar, sha256 checked) into the raw-data folder first; files shipped inside a zip (MIND) are extracted
from the archive, which is kept beside them (see :mod:`recbole_llm.data.download`).

A converted folder is stamped (:mod:`recbole_llm.data.conversion_stamp`) and converted again when its
converter's code or parameters or a raw file changed; the atomic files of a folder that no converter
wrote are the user's, and never replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dataset_converters._common import REPORT_FILE
from recbole_llm.config import setting
from recbole_llm.data.conversion_stamp import (
    STAMP_FILE,
    conversion_fingerprint,
    read_stamp,
    stale_parts,
    with_current_times,
    write_stamp,
)

if TYPE_CHECKING:
    from recbole.config import Config

    from recbole_llm.stock.config import StockConfig

logger = logging.getLogger(__name__)

RAW_DATA_ENV = "RECBOLE_LLM_RAW_DATA"
#: Entries of a converted folder carried into its reconversion: the text-embedding cache
#: (recbole_llm.text.encoder) is keyed by encoder and sha256 of the text, so it cannot serve a stale
#: vector. Anything else written beside the data (P4R profiles, ...) goes with the old conversion.
KEPT_ON_RECONVERSION = ("text_cache",)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's atomic files are not where RecBole would read them, and cannot be made."""


class RawDataNotFoundError(DatasetNotFoundError):
    """A named dataset's atomic files are missing and its raw files cannot be found."""


@dataclass(frozen=True)
class RawArchive:
    """A zip at an official address that holds raw files of a named dataset (MIND ships zips).

    ``path``: where the zip is kept, relative to the raw-data folder. ``size``: its published size.
    ``sha256``: pin it here when one is published; when None (MIND publishes none), the first
    download records the computed sha256 in ``<zip>.sha256`` and prints it with the size, and every
    later copy must match that record. ``mirrors``: addresses tried when ``url`` does not answer.
    """

    url: str
    path: str
    sha256: str | None = None
    size: int | None = None
    mirrors: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawFile:
    """One raw input of a named dataset.

    ``candidates``: paths relative to the raw-data folder, tried in order (the shared layout
    first, then flat). ``url`` / ``sha256`` / ``size``: the official download, when one exists.
    ``archive`` / ``member``: the file is the member of that base name in a zip, extracted to
    ``candidates[0]``.
    """

    role: str
    candidates: tuple[str, ...]
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    optional: bool = False
    archive: RawArchive | None = None
    member: str | None = None

    @property
    def downloadable(self) -> bool:
        return bool(self.url or self.archive)


@dataclass(frozen=True)
class NamedDataset:
    """A dataset ``--dataset=<name>`` converts from raw files.

    ``convert(raw, output, name)``: its parameters are the plain values it reads from its closure or
    from module constants (``GLOBO_SUBSET``); they and its code are stamped into the converted folder,
    so changing either reconverts it on the next run.
    """

    name: str
    description: str
    raw_files: tuple[RawFile, ...]
    convert: Callable[[dict[str, Path], Path, str], object]
    source: str = ""
    extra: dict = field(default_factory=dict)


def _amazon_candidates(stem: str, folder: str = "amazon-2018-5core") -> tuple[str, ...]:
    names = (f"{stem}.json.gz", f"{stem}.json", f"{stem}.jsonl.gz", f"{stem}.jsonl")
    return tuple(f"{folder}/{n}" for n in names) + names


def _convert_amazon(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.amazon import convert_amazon

    # kcore=0: the named datasets stay the deduplicated published files that the benchmarks in
    # benchmarks/results were run on (the converter's own default would re-apply the 5-core filter).
    return convert_amazon(raw["reviews"], output, meta_path=raw.get("meta"), name=name, kcore=0)


def _copy_atomic(source_name: str):
    def convert(raw: dict[str, Path], output: Path, name: str):
        from dataset_converters.atomic import copy_atomic

        return copy_atomic(raw["inter"].parent, output, name=name, source_name=source_name)

    return convert


def _convert_seqrec(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.seqrec import convert_seqrec

    has_text = "item_map" in raw and "item_meta" in raw
    return convert_seqrec(
        raw["sequences"],
        output,
        name=name,
        item_map=raw["item_map"] if has_text else None,
        item_meta=raw["item_meta"] if has_text else None,
    )


def _convert_unisrec(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.unisrec import convert_unisrec

    return convert_unisrec(raw["train"].parent, output, prefix="Scientific", name=name)


def _convert_mind(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.mind import convert_mind

    return convert_mind(raw["behaviors"], raw.get("news"), output, name=name)


_AMAZON_2018 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"

NAMED_DATASETS: dict[str, NamedDataset] = {}


def register(dataset: NamedDataset) -> NamedDataset:
    """Add (or replace) a named dataset."""
    NAMED_DATASETS[dataset.name] = dataset
    return dataset


register(
    NamedDataset(
        name="amazon-beauty",
        description="Amazon Reviews 2018 All_Beauty 5-core: ratings, timestamps, review text and summary",
        source="Ni, Li & McAuley, EMNLP 2019",
        raw_files=(
            RawFile(
                "reviews",
                _amazon_candidates("All_Beauty_5"),
                url=f"{_AMAZON_2018}/categoryFilesSmall/All_Beauty_5.json.gz",
                sha256="8e49737fefaec9290187c69bf92889452df8be0ab5e36c9476520d6639683279",
                size=634283,
            ),
        ),
        convert=_convert_amazon,
    )
)
register(
    NamedDataset(
        name="amazon-gift-cards",
        description="Amazon Reviews 2018 Gift_Cards 5-core + metadata (title, categories, brand, description, price)",
        source="Ni, Li & McAuley, EMNLP 2019",
        raw_files=(
            RawFile(
                "reviews",
                _amazon_candidates("Gift_Cards_5"),
                url=f"{_AMAZON_2018}/categoryFilesSmall/Gift_Cards_5.json.gz",
                sha256="41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25",
                size=176952,
            ),
            RawFile(
                "meta",
                _amazon_candidates("meta_Gift_Cards"),
                url=f"{_AMAZON_2018}/metaFiles2/meta_Gift_Cards.json.gz",
                sha256="24ac90af3eb47d9c04458a61a44a76a882419190e027c6ec14ee0a993549c34a",
                size=389825,
            ),
        ),
        convert=_convert_amazon,
    )
)
register(
    NamedDataset(
        name="lastfm",
        description="Last.fm (HetRec 2011) as RecBole atomic files: user, artist, weight, timestamp; artist names",
        source="Cantador, Brusilovsky & Kuflik, HetRec 2011",
        raw_files=(
            RawFile("inter", ("lastfm/lastfm.inter", "lastfm.inter")),
            RawFile("item", ("lastfm/lastfm.item", "lastfm.item"), optional=True),
        ),
        convert=_copy_atomic("lastfm"),
    )
)
register(
    NamedDataset(
        name="beauty-seq",
        description="Amazon 2014 Beauty in the S3-Rec/BSARec sequential format (literal ids 1..12101), "
        "item text (title, categories, brand, price) joined from amazon-2014-beauty/",
        source="McAuley et al., SIGIR 2015 / He & McAuley, WWW 2016; S3-Rec (Zhou et al., CIKM 2020) preprocessing",
        raw_files=(
            RawFile("sequences", ("seqrec/Beauty.txt", "Beauty.txt")),
            RawFile(
                "item_map",
                ("amazon-2014-beauty/DERIVED_s3rec_item_id2asin.tsv", "DERIVED_s3rec_item_id2asin.tsv"),
                optional=True,
            ),
            RawFile("item_meta", ("amazon-2014-beauty/Amazon_Beauty.item", "Amazon_Beauty.item"), optional=True),
        ),
        convert=_convert_seqrec,
    )
)
register(
    NamedDataset(
        name="lastfm-seq",
        description="Last.fm in the S3-Rec/BSARec sequential format (literal ids 1..3646), no text",
        source="Cantador, Brusilovsky & Kuflik, HetRec 2011; S3-Rec preprocessing",
        raw_files=(RawFile("sequences", ("seqrec/LastFM.txt", "LastFM.txt")),),
        convert=_convert_seqrec,
    )
)
register(
    NamedDataset(
        name="scientific",
        description=(
            "Amazon 2018 Industrial & Scientific, UniSRec pre-split files (8,442 users, 4,385 items) + item text"
        ),
        source="Ni, Li & McAuley, EMNLP 2019; UniSRec (Hou et al., KDD 2022) preprocessing",
        raw_files=tuple(
            RawFile(split, (f"amazon-2018-scientific/Scientific.{split}.inter", f"Scientific.{split}.inter"))
            for split in ("train", "valid", "test")
        )
        + (RawFile("text", ("amazon-2018-scientific/Scientific.text", "Scientific.text"), optional=True),),
        convert=_convert_unisrec,
    )
)
register(
    NamedDataset(
        name="mind-small-sample-clicks",
        description="The MIND-small sample (mind-small-sample/) as clicks for top-k models: one row per clicked "
        "news (impression, user, news, label, time) + news text",
        source="Wu et al., ACL 2020",
        raw_files=(
            RawFile("behaviors", ("mind-small-sample/behaviors.tsv", "behaviors.tsv")),
            RawFile("news", ("mind-small-sample/news.tsv", "news.tsv"), optional=True),
        ),
        convert=_convert_mind,
    )
)

_MIND = "https://mind201910small.blob.core.windows.net/release"
_MIND_MIRROR = "https://recodatasets.z20.web.core.windows.net/newsrec"  # microsoft/recommenders' copy


def _mind_archive(stem: str, size: int) -> RawArchive:
    """An official MIND zip. Sizes as microsoft/recommenders' tests check them; no sha256 is published."""
    return RawArchive(
        url=f"{_MIND}/{stem}.zip", path=f"mind-small/{stem}.zip", size=size, mirrors=(f"{_MIND_MIRROR}/{stem}.zip",)
    )


_MIND_SMALL_TRAIN = _mind_archive("MINDsmall_train", 52_952_752)
_MIND_SMALL_DEV = _mind_archive("MINDsmall_dev", 30_945_572)
#: Histories cut at conversion to the most recent clicks (the models' default max_history): RecBole
#: pads every history to the longest, and MIND-small's full ones would cost about 1 GB.
MIND_SMALL_HISTORY = 50


def _mind_file(role: str, folder: str, member: str, archive: RawArchive) -> RawFile:
    return RawFile(role, (f"mind-small/{folder}/{member}", f"{folder}/{member}"), archive=archive, member=member)


def _convert_mind_small(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.mind import convert_mind_impressions

    # The converter of mind-small-sample; NewsRecLib's protocol: train = MIND-small train before
    # 2019-11-14, valid = its last day, test = MIND-small dev. History ids without a news row are
    # kept (without text) and counted in the report's news coverage.
    return convert_mind_impressions(
        raw["behaviors"],
        raw["news"],
        output,
        dev_behaviors=raw["dev_behaviors"],
        dev_news=raw["dev_news"],
        name=name,
        keep_missing_news=True,
        max_history=MIND_SMALL_HISTORY,
    )


register(
    NamedDataset(
        name="mind-small",
        description="MIND-small as news impressions for NRMS/NAML/LSTUR/AWRS: train = MIND-small train before "
        "2019-11-14, valid = its last day, test = MIND-small dev; click histories (last 50), news table. "
        "--download_raw=True fetches MINDsmall_train.zip and MINDsmall_dev.zip from the official address",
        source="Wu et al., ACL 2020 (Microsoft Research license terms)",
        raw_files=(
            _mind_file("behaviors", "MINDsmall_train", "behaviors.tsv", _MIND_SMALL_TRAIN),
            _mind_file("news", "MINDsmall_train", "news.tsv", _MIND_SMALL_TRAIN),
            _mind_file("dev_behaviors", "MINDsmall_dev", "behaviors.tsv", _MIND_SMALL_DEV),
            _mind_file("dev_news", "MINDsmall_dev", "news.tsv", _MIND_SMALL_DEV),
        ),
        convert=_convert_mind_small,
    )
)


def _convert_mind_sample_impressions(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.mind import convert_mind_impressions

    # The sample has no dev file and covers ~4% of its news ids: its last two days are valid and test,
    # and history ids without a news row are kept (their title is missing).
    return convert_mind_impressions(
        raw["behaviors"],
        raw["news"],
        output,
        name=name,
        valid_from="2019-11-13T00:00:00",
        test_from="2019-11-14T00:00:00",
        keep_missing_news=True,
    )


#: ``dkn-bing-news`` has no validation file: each user's validation impression is about this share of
#: their raw_train rows, drawn with this seed (dataset_converters.mind.convert_dkn_bing); raw_test is the test.
DKN_VALIDATION = {"valid_share": 0.1, "valid_seed": 0}


def _convert_dkn_bing(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.mind import convert_dkn_bing

    return convert_dkn_bing(raw["train"], raw["test"], output, name=name, **DKN_VALIDATION)


register(
    NamedDataset(
        name="mind-small-sample",
        description="MIND-small sample as news impressions for NRMS/NAML/LSTUR/AWRS: train/valid/test benchmark "
        "files by day (valid 2019-11-13, test 2019-11-14), click histories, news table (~4% coverage)",
        source="Wu et al., ACL 2020",
        raw_files=(
            RawFile("behaviors", ("mind-small-sample/behaviors.tsv", "behaviors.tsv")),
            RawFile("news", ("mind-small-sample/news.tsv", "news.tsv")),
        ),
        convert=_convert_mind_sample_impressions,
    )
)
register(
    NamedDataset(
        name="dkn-bing-news",
        description="DKN Bing News click sample as news impressions: per user, training impressions of 10 "
        "raw_train rows, one validation impression of a seeded 10% of their raw_train rows (seed 0, held out of "
        "training and histories), one test impression of their raw_test rows; full title coverage, no times",
        source="Wang et al., DKN, WWW 2018 (hwwang55/DKN)",
        raw_files=(
            RawFile("train", ("dkn-bing-news/raw_train.txt", "raw_train.txt")),
            RawFile("test", ("dkn-bing-news/raw_test.txt", "raw_test.txt")),
        ),
        convert=_convert_dkn_bing,
    )
)


#: ``amazon-games-10k``: users drawn from the 50,546 of Games-6k.test.inter (random.Random(seed).sample
#: over the file's rows), so that 5 models x 8 tuning trials fit a 2-core CPU; nothing else is filtered.
GAMES_SAMPLE = {"sample_users_n": 10_000, "seed": 0}
#: ``globo``: the filtered, seeded subset of the Globo.com click log (dataset_converters.globo, steps 1-4).
GLOBO_SUBSET = {"sample_users_n": 20_000, "seed": 0, "min_user_clicks": 5, "min_article_clicks": 10}


def _convert_llmrank(**options):
    def convert(raw: dict[str, Path], output: Path, name: str):
        from dataset_converters.llmrank import convert_llmrank

        return convert_llmrank(raw["sequences"], raw["item"], output, name=name, **options)

    return convert


def _convert_globo(raw: dict[str, Path], output: Path, name: str):
    from dataset_converters.globo import convert_globo

    return convert_globo(raw["clicks"], output, name=name, **GLOBO_SUBSET)


_GAMES_FILES = (
    RawFile("sequences", ("amazon-2018-games/Games-6k.test.inter", "Games-6k.test.inter")),
    RawFile("item", ("amazon-2018-games/Games.item", "Games.item")),
)
_GAMES_SOURCE = "Ni, Li & McAuley, EMNLP 2019; LLMRank (Hou et al., ECIR 2024) / UniSRec preprocessing"
register(
    NamedDataset(
        name="amazon-games",
        description="Amazon 2018 Video Games, LLMRank/UniSRec processing, for general recommendation: each "
        "user's full sequence (history + test item), timestamp = position in the sequence, item titles; "
        "50,546 users, 16,859 items, 440,264 interactions",
        source=_GAMES_SOURCE,
        raw_files=_GAMES_FILES,
        convert=_convert_llmrank(),
    )
)
register(
    NamedDataset(
        name="amazon-games-10k",
        description="amazon-games restricted to 10,000 users drawn with random.Random(0).sample over the rows of "
        "Games-6k.test.inter (no other filter; the items of those users kept, 9,794 of them with < 5 "
        "interactions): 10,000 users, 14,782 items, 86,922 interactions",
        source=_GAMES_SOURCE,
        raw_files=_GAMES_FILES,
        convert=_convert_llmrank(**GAMES_SAMPLE),
    )
)
register(
    NamedDataset(
        name="globo",
        description="Globo.com news clicks, first click per (user, article); 20,000 users drawn with "
        "random.Random(0) among the 159,991 with >= 5 distinct articles; then articles with >= 10 users and "
        "users with >= 5 articles, iterated to a fixed point: 18,805 users, 2,779 articles, 285,645 "
        "interactions; timestamp = seconds since 2017-10-01 00:00 UTC-3",
        source="Moreira, Ferreira & da Cunha, DLRS 2018 (CHAMELEON)",
        raw_files=(RawFile("clicks", ("globo-news-clicks/globo_clicks.csv.gz", "globo_clicks.csv.gz")),),
        convert=_convert_globo,
    )
)


def known_dataset_names() -> list[str]:
    """Names that ``--dataset`` can convert from raw files."""
    return sorted(NAMED_DATASETS)


def atomic_files_present(data_path: str | Path, dataset: str, config: Config | None = None) -> bool:
    """True when RecBole will find this dataset's interactions in ``data_path``."""
    folder = Path(data_path)
    benchmark = config["benchmark_filename"] if config is not None else None  # RecBole: None when unset
    if benchmark:
        return all((folder / f"{dataset}.{part}.inter").is_file() for part in benchmark)
    return (folder / f"{dataset}.inter").is_file()


def raw_data_root(config: Config | StockConfig | None = None) -> Path | None:
    """The raw-data folder: config ``raw_data_path``, else ``$RECBOLE_LLM_RAW_DATA``, else None."""
    value = (setting(config, "raw_data_path") if config is not None else None) or os.environ.get(RAW_DATA_ENV)
    return Path(value).expanduser() if value else None


def locate_raw_files(spec: NamedDataset, root: Path | None) -> tuple[dict[str, Path], list[RawFile]]:
    """(found role -> path, required files not found) under ``root``."""
    found: dict[str, Path] = {}
    missing: list[RawFile] = []
    for raw in spec.raw_files:
        path = None
        if root is not None:
            path = next((root / c for c in raw.candidates if (root / c).is_file()), None)
        if path is not None:
            found[raw.role] = path
        elif not raw.optional:
            missing.append(raw)
    return found, missing


def _download_missing(spec: NamedDataset, missing: list[RawFile], root: Path) -> None:
    """Download the missing raw files into ``root``; zipped ones through their (kept) archive."""
    from recbole_llm.data.download import download_file, extract_members, fetch_archive

    from_archives: dict[RawArchive, dict[str, Path]] = {}
    for raw in missing:
        if raw.archive is not None:
            from_archives.setdefault(raw.archive, {})[raw.member or Path(raw.candidates[0]).name] = (
                root / raw.candidates[0]
            )
        elif raw.url:
            download_file(raw.url, root / raw.candidates[0], sha256=raw.sha256, expected_size=raw.size)
        else:
            raise RawDataNotFoundError(
                f"{spec.name}: raw file {raw.candidates[0]} has no official download address; put it under {root}."
            )
    for archive, members in from_archives.items():
        path = fetch_archive(archive.url, root / archive.path, archive.sha256, archive.size, archive.mirrors)
        extract_members(path, members)


def _raw_root(config, data_path: Path) -> Path | None:
    """Where the raw files are looked for: the raw-data folder, else (with ``download_raw``) ``<data>/raw``."""
    root = raw_data_root(config)
    if root is None and config is not None and setting(config, "download_raw"):
        return data_path.parent / "raw"
    return root


def _find_raw_files(spec: NamedDataset, config, data_path: Path) -> dict[str, Path]:
    """The raw files of ``spec``, the missing ones downloaded first with ``download_raw``; else a one-line error."""
    dataset, root = config["dataset"], _raw_root(config, data_path)
    found, missing = locate_raw_files(spec, root)
    if missing and root is not None and setting(config, "download_raw"):
        from recbole_llm.data.download import DownloadError

        try:
            _download_missing(spec, missing, root)
        except DownloadError as err:
            raise DatasetNotFoundError(f"Named dataset '{dataset}': {err}") from None
        found, missing = locate_raw_files(spec, root)
    if missing:
        where = f"under {root}" if root is not None else "(no raw-data folder set)"
        wanted = "; ".join(" or ".join(m.candidates[:2]) for m in missing)
        downloadable = all(m.downloadable for m in missing)
        raise RawDataNotFoundError(
            f"Named dataset '{dataset}': no atomic files in {data_path} and raw file(s) not found {where}: "
            f"looked for {wanted}. Set --raw_data_path=<folder> or the environment variable {RAW_DATA_ENV}"
            + (", or pass --download_raw=True to download them." if downloadable else ".")
        )
    return found


def _reconversion_reason(spec: NamedDataset, config, data_path: Path) -> tuple[str | None, dict[str, Path]]:
    """(why the present folder must be converted again, or None to use it as it is; the raw files found).

    A folder without the converters' report is the user's own atomic files: never replaced. A
    converted one whose raw files are gone cannot be checked (nor redone): used, with a warning.
    """
    stamp = read_stamp(data_path)
    if stamp is None and not (data_path / REPORT_FILE).is_file():
        return None, {}
    found, missing = locate_raw_files(spec, _raw_root(config, data_path))
    if missing:
        logger.warning(
            "Named dataset %s: raw file(s) %s not found, so %s cannot be checked against them; used as it is",
            config["dataset"],
            ", ".join(m.candidates[0] for m in missing),
            data_path,
        )
        return None, found
    if stamp is None:
        return f"no {STAMP_FILE} (converted before conversions were stamped)", found
    current = conversion_fingerprint(config["dataset"], spec.convert, found)
    changes = stale_parts(stamp, current)
    if not changes and (refreshed := with_current_times(stamp, current)) is not None:
        write_stamp(data_path, refreshed)  # the same raw content under a new time: hashed once, not every run
    return "; ".join(changes) or None, found


def _keep_caches(old: Path, new: Path) -> None:
    """Hard-link (else copy) the entries of :data:`KEPT_ON_RECONVERSION` from ``old`` into ``new``."""

    def link_or_copy(source: str, target: str) -> None:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    for entry in KEPT_ON_RECONVERSION:
        if (old / entry).is_dir() and not (new / entry).exists():
            shutil.copytree(old / entry, new / entry, copy_function=link_or_copy)


def _convert_stamped(spec: NamedDataset, found: dict[str, Path], config, replace: bool) -> bool:
    """Convert into a temporary folder, stamp it, then rename it into place (replacing the old folder whole).

    Until the final rename nothing in ``data_path`` changes: a failed or killed conversion leaves the
    previous folder as it was (the temporary one is removed, after a kill by the next conversion).
    """
    from dataset_converters import ConversionError
    from dataset_converters._common import atomic_output_dir

    dataset, data_path = config["dataset"], Path(config["data_path"])
    # before reading, so a later edit is seen; with the raw files' hashes, so a mere new time is not
    fingerprint = conversion_fingerprint(dataset, spec.convert, found, with_hashes=True)
    try:
        with atomic_output_dir(data_path, overwrite=replace) as staged:
            # The converter's own temporary folder then lives inside ours, so one clean-up covers both.
            spec.convert(found, staged / "converted", dataset)
            for entry in (staged / "converted").iterdir():
                entry.rename(staged / entry.name)
            (staged / "converted").rmdir()
            write_stamp(staged, fingerprint)
            if replace:
                _keep_caches(data_path, staged)
    except ConversionError as err:
        if not replace and atomic_files_present(data_path, dataset, config):
            return True  # another run converted it meanwhile (its output is complete: one rename)
        raise DatasetNotFoundError(f"Named dataset '{dataset}' could not be converted: {err}") from None
    return atomic_files_present(data_path, dataset, config)


def prepare_named_dataset(config: Config) -> bool:
    """Make the up-to-date atomic files of a named dataset appear in ``config['data_path']``.

    Returns True when the files are present afterwards; False for an unknown name whose files
    are missing. A folder converted here is reused while its stamp (:mod:`conversion_stamp`) matches
    the converter's code and parameters and the raw files; otherwise it is converted again, and a
    warning says what changed. Raises :class:`RawDataNotFoundError` when a named dataset's raw files
    are not found (saying where it looked).
    """
    dataset, data_path = config["dataset"], Path(config["data_path"])
    present = atomic_files_present(data_path, dataset, config)
    spec = NAMED_DATASETS.get(dataset)
    if spec is None:
        return present  # RecBole's bundled ml-100k or the user's own dataset: not ours to convert
    if present:
        reason, found = _reconversion_reason(spec, config, data_path)
        if reason is None:
            return True
        logger.warning("Reconverting named dataset %s in %s: %s", dataset, data_path, reason)
    else:
        found = _find_raw_files(spec, config, data_path)
        logger.info("Converting named dataset %s from %s into %s", dataset, _raw_root(config, data_path), data_path)
    return _convert_stamped(spec, found, config, replace=present)
