"""The offline, resumable profile-generation stage, and the lookup a model uses to read profiles.

Where profiles go: ``profile_file`` if set; else ``<profile_dir>/<dataset>.p4r-profiles.<backend>.<key>.jsonl``
with ``profile_dir`` defaulting to the dataset's ``data_path`` when that folder is writable and not
inside an installed package (RecBole's bundled ml-100k lives in site-packages), else
``dataset/<dataset>/`` under the current directory. ``<key>`` hashes everything that changes the
profiles (model, prompt file, decoding, attribute settings, training split), so a rerun with the
same settings resumes the same file and changed settings never mix with old profiles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from recbole_llm.profiles.attributes import (
    ItemAttributes,
    attribute_settings,
    collect_item_attributes,
    split_fingerprint,
    writable_dir,
)
from recbole_llm.profiles.backends import (
    TEMPLATE_VERSION,
    ProfileBackend,
    TemplateBackend,
    TransformersBackend,
    decoding_stamp,
    llm_identity,
    model_fingerprint,
)
from recbole_llm.profiles.prompt import PromptTemplate, profile_text
from recbole_llm.profiles.store import ProfileStore, check_profile_file, read_profiles

if TYPE_CHECKING:
    from recbole.config import Config
    from recbole.data.dataset import Dataset

logger = logging.getLogger(__name__)


def backend_choices() -> tuple[str, ...]:
    """The profile backends (``choices`` of ``profile_backend`` for P4R in properties/schema.yaml)."""
    from recbole_llm.model.general_recommender.p4r import P4R
    from recbole_llm.validation import rules_for

    return tuple(rules_for(P4R)["profile_backend"]["choices"])


class ProfilesMissingError(FileNotFoundError):
    """No profile file for these settings, and the backend is too costly to run implicitly."""


def backend_name(config: Config) -> str:
    """``profile_backend`` (one of :func:`backend_choices`), checked against what it needs."""
    name = str(config["profile_backend"]).lower()
    if name not in backend_choices():
        raise ValueError(f"profile_backend must be one of {', '.join(backend_choices())}, got '{name}'")
    if name == "transformers" and not config["profile_llm"]:
        raise ValueError("profile_backend=transformers needs profile_llm (a causal LM name or local folder).")
    return name


def decoding_settings(config: Config) -> dict[str, Any]:
    """Decoding settings that change the output (recorded in the file and part of its key)."""
    if backend_name(config) == "template":
        return {}
    generation = yaml_checked(config, "profile_generation")
    return decoding_stamp(
        generation,
        int(config["profile_max_new_tokens"]),
        int(config["profile_max_prompt_tokens"]),
        float(config["profile_repetition_penalty"]),
        int(config["profile_no_repeat_ngram_size"]),
        float(config["profile_temperature"]),
        yaml_checked(config, "profile_repetition_scope"),
    )


def yaml_checked(config: Config, key: str) -> str:
    """``config[key]`` if P4R's choices in properties/schema.yaml allow it, else one clear ValueError."""
    from recbole_llm.model.abstract_recommender import checked_choice
    from recbole_llm.model.general_recommender.p4r import P4R

    return checked_choice(P4R, key, str(config[key]))


def profile_identity(config: Config, train_dataset: Dataset) -> dict[str, Any]:
    """The header fields that identify a profile file (see :data:`store.IDENTITY_KEYS`)."""
    backend = backend_name(config)
    extrinsic = bool(config["profile_extrinsic"])
    if backend == "template":
        model, prompt_hash = "template", TEMPLATE_VERSION
    else:
        model = llm_identity(config["profile_llm"])
        prompt_hash = PromptTemplate.load(config["profile_prompt_file"]).text_hash
    identity = {
        "dataset": str(config["dataset"]),
        "backend": backend,
        "model": model,
        "prompt_hash": prompt_hash,
        "decoding": decoding_settings(config),
        "attributes": attribute_settings(config),
        "split": split_fingerprint(train_dataset) if extrinsic else "none (intrinsic attributes only)",
    }
    if backend != "template":
        identity["model_hash"] = model_fingerprint(config["profile_llm"])  # the weights, not just their name
    return identity


def default_profile_dir(config: Config) -> Path:
    """``profile_dir: ~``: next to the data when that folder is writable and not inside an installed package,
    else ``dataset/<dataset>`` under the working folder (made absolute for Ray trials by ``recbole_llm.tune``)."""
    data_path = Path(str(config["data_path"]))
    parts = data_path.resolve().parts
    if data_path.is_dir() and writable_dir(data_path) and "site-packages" not in parts and "dist-packages" not in parts:
        return data_path
    return Path("dataset") / str(config["dataset"])


def profile_path(config: Config, train_dataset: Dataset, identity: dict[str, Any] | None = None) -> Path:
    """Where the profiles for ``config`` (and this training split) are stored."""
    explicit = config["profile_file"]
    if explicit:
        return Path(explicit).expanduser()
    identity = identity or profile_identity(config, train_dataset)
    folder = Path(config["profile_dir"] or default_profile_dir(config)).expanduser()  # ~: next to the data
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    slug = identity["backend"]
    if identity["backend"] != "template":
        slug += "-" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(identity["model"].rstrip("/")).name)[:40]
    return folder / f"{config['dataset']}.p4r-profiles.{slug}.{key}.jsonl"


def build_backend(config: Config) -> ProfileBackend:
    """The configured profile writer: the deterministic template, or a Hugging Face model with its decoding settings."""
    name = backend_name(config)
    if name == "template":
        return TemplateBackend()
    decoding = decoding_settings(config)
    return TransformersBackend(
        config["profile_llm"],
        PromptTemplate.load(config["profile_prompt_file"]),
        device=config["device"],
        max_new_tokens=decoding["max_new_tokens"],
        batch_size=int(config["profile_batch_size"]),
        dtype=str(config["profile_llm_dtype"]),
        max_prompt_tokens=decoding["max_prompt_tokens"],
        generation=decoding["generation"],
        repetition_penalty=decoding["repetition_penalty"],
        no_repeat_ngram_size=decoding["no_repeat_ngram_size"],
        temperature=decoding["temperature"],
        seed=int(config["seed"]),
        repetition_scope=decoding["repetition_scope"],
    )


@dataclass
class GenerationResult:
    path: Path
    total: int  # items in the dataset
    skipped: int  # already in the file before this run
    generated: int  # written by this run
    unparsed: int  # written by this run with parsed == False
    seconds: float


def _load_dataset_and_train_split(config):
    from recbole.utils import init_seed

    from recbole_llm.data import create_dataset

    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    # The same seed and call order as training (quick_start.build), so the split is the same.
    train_dataset = dataset.build()[0]
    return dataset, train_dataset


def generate_profiles(
    config: Config,
    dataset: Dataset | None = None,
    train_dataset: Dataset | None = None,
    backend: ProfileBackend | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    show_progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> GenerationResult:
    """Generate (or finish generating) one profile per item and append them to the profile file.

    ``dataset``/``train_dataset`` default to the config's dataset and its training split (the
    split gives the extrinsic attributes, so no validation/test feedback enters a profile).
    ``limit`` caps how many new profiles this call writes; ``on_batch(n_written)`` runs after each
    stored batch (tests use it to interrupt the run).
    """
    start = time.perf_counter()
    backend_name(config)  # a bad profile_backend / missing profile_llm fails before any data is loaded
    if dataset is None:
        dataset, train_dataset = _load_dataset_and_train_split(config)
    train_dataset = train_dataset if train_dataset is not None else dataset
    identity = profile_identity(config, train_dataset)
    path = Path(output) if output else profile_path(config, train_dataset, identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(path):  # parallel runs (seeds, Ray trials) wait instead of writing twice
        return _generate_locked(
            config, dataset, train_dataset, identity, path, backend, overwrite, limit, show_progress, on_batch, start
        )


@contextmanager
def _exclusive_lock(path: Path):
    """An advisory lock on ``<file>.lock`` for the duration of one generation run (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    with open(str(path) + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generate_locked(
    config, dataset, train_dataset, identity, path, backend, overwrite, limit, show_progress, on_batch, start
) -> GenerationResult:
    store = ProfileStore(
        path, {**identity, "generation_batch_size": int(config["profile_batch_size"])}, overwrite=overwrite
    )
    if store.repaired_bytes:
        logger.warning(
            "Cut a torn last line (%d bytes) from %s: an earlier run was killed mid-write.", store.repaired_bytes, path
        )
    items = collect_item_attributes(config, dataset, train_dataset)
    todo: list[ItemAttributes] = [item for item in items if item.token not in store.done]
    skipped = len(items) - len(todo)
    if limit is not None:
        todo = todo[: max(0, int(limit))]
    if not todo:
        return GenerationResult(path, len(items), skipped, 0, 0, time.perf_counter() - start)
    backend = backend or build_backend(config)
    if (
        backend.prompt_hash != identity["prompt_hash"]
        or backend.model_id != identity["model"]
        or backend.decoding != identity["decoding"]
    ):
        raise ValueError(
            "The backend passed does not match the config's profile_backend / profile_llm / decoding settings."
        )
    todo = backend.in_generation_order(todo)
    extra = {"chat_template": backend.use_chat_template} if isinstance(backend, TransformersBackend) else {}
    written = unparsed = 0
    started = time.perf_counter()
    # tqdm shows items/s and the ETA; the postfix adds generated tokens/s for an LLM backend
    with tqdm(
        total=len(todo), desc=f"profiles ({backend.name})", unit="item", disable=not show_progress, dynamic_ncols=True
    ) as progress:
        for begin in range(0, len(todo), backend.batch_size):
            batch = todo[begin : begin + backend.batch_size]
            records = backend.generate(batch)
            for record in records:
                record.setdefault("model", backend.model_id)
                record.setdefault("prompt_hash", backend.prompt_hash)
                record.update(extra)
            store.append(records)
            written += len(records)
            unparsed += sum(1 for r in records if not r.get("parsed", True))
            progress.update(len(records))
            if isinstance(backend, TransformersBackend):
                progress.set_postfix(tokens_per_s=f"{backend.generated_tokens / (time.perf_counter() - started):.1f}")
            if on_batch is not None:
                on_batch(written)
    logger.info("Profiles: %d new (%d unparsed), %d already done, in %s", written, unparsed, skipped, path)
    return GenerationResult(path, len(items), skipped, written, unparsed, time.perf_counter() - start)


def _generate_command(config, identity: dict[str, Any]) -> str:
    return (
        f"python run_recbole_llm.py profiles --dataset={config['dataset']} --backend={identity['backend']} "
        f"--llm={identity['model']} --seed={config['seed']}"
    )


def _check_complete(config, identity: dict[str, Any], path: Path, absent: list[bool]) -> None:
    """One clear error for a profile file that lacks items, unless ``profile_allow_partial`` is set."""
    if any(absent) and not config["profile_allow_partial"]:
        raise ProfilesMissingError(
            f"{sum(absent)} of {len(absent)} items have no profile in {path}: finish the generation with "
            f"{_generate_command(config, identity)} (it resumes), or set profile_allow_partial=True to mask them."
        )


def load_item_profiles(
    config: Config, train_dataset: Dataset, generate_missing: bool | None = None
) -> tuple[list[str | None], Path]:
    """One profile text per internal item id of ``train_dataset`` (index 0 = padding -> None).

    The ``template`` backend fills a missing or incomplete file on the fly (it is cheap and needs
    no LLM); for ``transformers`` a missing file raises :class:`ProfilesMissingError` naming the
    command to run, and so does a partial one (a run on half-generated profiles would be reported as
    the method's result) unless ``profile_allow_partial``: then items without a profile get ``None``
    (the model masks them).
    An existing file must carry this dataset and training split in its header
    (:func:`store.check_profile_file`), whichever backend wrote it.
    """
    identity = profile_identity(config, train_dataset)
    path = profile_path(config, train_dataset, identity)
    if generate_missing is None:
        generate_missing = identity["backend"] == "template"
    if generate_missing:
        generate_profiles(
            config,
            dataset=train_dataset,
            train_dataset=train_dataset,
            output=path,
            show_progress=bool(config["show_progress"]),
        )
    elif not path.is_file():
        raise ProfilesMissingError(
            f"No item profiles at {path}. Generate them first: {_generate_command(config, identity)} "
            "(with the same seed, split and profile_* settings as training), or set profile_file."
        )
    else:
        # a file made on another seed's split quotes ratings/reviews that are test data here
        check_profile_file(path, identity, hint=f"regenerate it: {_generate_command(config, identity)}")
    records = read_profiles(path)
    tokens = train_dataset.field2id_token[train_dataset.iid_field]
    found = [records.get(str(tokens[item_id])) for item_id in range(1, train_dataset.item_num)]
    _check_complete(config, identity, path, [record is None for record in found])
    texts: list[str | None] = [None] + [(profile_text(record) if record else "") or None for record in found]
    missing = sum(t is None for t in texts[1:])
    if missing:
        logger.warning(
            "%d of %d items have no profile in %s: they use their ID embedding only.",
            missing,
            train_dataset.item_num - 1,
            path,
        )
    return texts, path
