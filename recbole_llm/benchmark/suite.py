"""Suite files (``benchmarks/suites/*.yaml``): what a benchmark runs, read and checked in one place.

    name: p4r                         # default: the file name
    datasets:                         # names, or {name: ..., config: {...}} with dataset-only settings
      - ml-100k
    models:
      - {name: P4R, search_space: P4R, config: {profile_backend: template}}
      - {name: LightGCN, search_space: LightGCN, baseline: true}
    protocol:                         # settings shared by every run (tuning trials and final runs)
      eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: RO, group_by: user, mode: full}
      metrics: [Recall, NDCG, MRR, Hit]
      topk: [10, 20]
      valid_metric: NDCG@10
      stopping_step: 10               # early-stopping patience (validations without improvement)
      min_epochs: 10                  # early stopping never ends a run before this many epochs
      epochs: 300                     # epoch cap; a final run that reaches it is flagged
      config: {train_batch_size: 2048}
    tuning: {trials: 20, search_alg: random, scheduler: fifo}   # the same budget for every model
    final: {seeds: 5}                 # a count (2020, 2021, ...) or a list

A model entry: ``name`` (its label in the tables), ``model`` (the RecBole / recbole-llm class, default
``name``), ``search_space`` (a ``properties/search/<name>.yaml`` name, default ``name``, or a yaml path
relative to the suite file; null: not tuned, flagged), ``config`` (fixed settings), ``per_dataset``
(``{dataset: {key: value}}``: fixed settings on one dataset only), ``baseline`` (true for the
baselines the paired test picks from), ``variant_of`` (the name of the entry this one modifies, e.g.
an OIE initialisation of that vanilla model: the report tests it against that entry too, early in
training and after early stopping, and draws their validation curves in one panel), ``datasets``
(the suite's datasets this model runs on, default all: a model whose input costs hours per dataset,
such as LLM-written profiles, runs where that input exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MODEL_KEYS = ("name", "model", "search_space", "config", "baseline", "per_dataset", "variant_of", "datasets")
PROTOCOL_KEYS = ("eval_args", "metrics", "topk", "valid_metric", "stopping_step", "min_epochs", "epochs")


class SuiteError(ValueError):
    """A suite file that cannot be run: the message names the file and the key."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model: str
    search_space: str | None
    config: dict[str, Any]
    baseline: bool
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    variant_of: str | None = None
    datasets: tuple[str, ...] | None = None  # None: every dataset of the suite


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    datasets: list[DatasetEntry]
    models: list[ModelEntry]
    protocol: dict[str, Any]
    trials: int
    tuning: dict[str, Any]
    seeds: list[int]
    extra_config: dict[str, Any] = field(default_factory=dict)
    # what the report prints beside the figures: ``paper`` (the paper's claim), ``notes`` (explanations)
    report: dict[str, Any] = field(default_factory=dict)

    def models_on(self, dataset: DatasetEntry) -> list[ModelEntry]:
        """The models that run on ``dataset`` (a model entry may name the datasets it runs on)."""
        return [m for m in self.models if m.datasets is None or dataset.name in m.datasets]

    @property
    def min_epochs(self) -> int:
        return int(self.protocol["min_epochs"])

    @property
    def epoch_cap(self) -> int:
        return int(self.protocol["epochs"])

    def epoch_cap_on(self, dataset_name: str, model_name: str) -> int:
        """The epoch cap of one (dataset, model): a dataset or model entry may raise the protocol's, since
        convergence is measured per dataset (the protocol's cap for names the suite does not hold)."""
        dataset = next((d for d in self.datasets if d.name == dataset_name), None)
        model = next((m for m in self.models if m.name == model_name), None)
        if dataset is None or model is None:
            return self.epoch_cap
        return int(self.run_config(dataset, model).get("epochs", self.epoch_cap))

    def caps_text(self) -> str:
        """'300', or '300 (lastfm: 1000)' where an entry sets its own cap: the report's protocol line."""
        pairs = {(d.name, self.epoch_cap_on(d.name, m.name)) for d in self.datasets for m in self.models_on(d)}
        own = ", ".join(f"{name}: {cap}" for name, cap in sorted(pairs) if cap != self.epoch_cap)
        return f"{self.epoch_cap}" + (f" ({own})" if own else "")

    @property
    def valid_metric(self) -> str:
        return str(self.protocol["valid_metric"]).lower()

    def run_config(self, dataset: DatasetEntry, model: ModelEntry) -> dict[str, Any]:
        """Fixed settings of one (dataset, model): protocol < dataset < model < model on that dataset < overrides."""
        protocol = {k: v for k, v in self.protocol.items() if k != "config"}
        return {
            **protocol,
            "eval_step": 1,
            "show_progress": False,
            **self.protocol.get("config", {}),
            **dataset.config,
            **model.config,
            **model.per_dataset.get(dataset.name, {}),
            **self.extra_config,
        }


def _require(mapping: dict, key: str, path: Path, where: str) -> Any:
    if key not in mapping or mapping[key] is None:
        raise SuiteError(f"{path}: missing '{where}{key}'")
    return mapping[key]


def _models(raw: list, path: Path) -> list[ModelEntry]:
    entries = []
    for item in raw:
        item = {"name": item} if isinstance(item, str) else dict(item)
        name = str(_require(item, "name", path, "models[].")).strip()
        unknown = set(item) - set(MODEL_KEYS)
        if unknown:
            raise SuiteError(
                f"{path}: model '{name}' has unknown key(s) {sorted(unknown)}; allowed: {', '.join(MODEL_KEYS)}"
            )
        space = item.get("search_space", name)
        if space is not None and str(space).endswith((".yaml", ".yml")):  # a file: relative to the suite file
            space = str((path.parent / space).resolve())
        per_dataset = {str(k): dict(v or {}) for k, v in (item.get("per_dataset") or {}).items()}
        entries.append(
            ModelEntry(
                name,
                str(item.get("model") or name),
                space,
                dict(item.get("config") or {}),
                bool(item.get("baseline", False)),
                per_dataset,
                None if item.get("variant_of") is None else str(item["variant_of"]),
                None if item.get("datasets") is None else tuple(str(d) for d in item["datasets"]),
            )
        )
    if len({e.name for e in entries}) != len(entries):
        raise SuiteError(f"{path}: model names must be unique, got {[e.name for e in entries]}")
    _check_variants(entries, path)
    return entries


def _check_variants(entries: list[ModelEntry], path: Path) -> None:
    """``variant_of`` names another entry, which is no variant itself (one level: base and its variants)."""
    by_name = {e.name: e for e in entries}
    for entry in entries:
        if entry.variant_of is None:
            continue
        base = by_name.get(entry.variant_of)
        if base is None or base is entry:
            raise SuiteError(f"{path}: model '{entry.name}' has variant_of '{entry.variant_of}', not another model")
        if base.variant_of is not None:
            raise SuiteError(f"{path}: model '{entry.name}' is a variant of '{base.name}', itself a variant")


def _check_model_datasets(models: list[ModelEntry], datasets: list[DatasetEntry], path: Path) -> None:
    """A model's ``datasets`` names datasets of the suite (a typo would silently drop the model)."""
    known = [d.name for d in datasets]
    for model in models:
        unknown = sorted(set(model.datasets or ()) - set(known))
        if unknown:
            raise SuiteError(f"{path}: model '{model.name}' names datasets {unknown} not in the suite ({known})")


def _seeds(spec: Any, path: Path) -> list[int]:
    if isinstance(spec, int) and spec >= 1:
        return [2020 + i for i in range(spec)]
    if isinstance(spec, list) and spec and all(isinstance(s, int) for s in spec):
        return list(spec)
    raise SuiteError(f"{path}: 'final.seeds' must be a count >= 1 or a list of integers, got {spec!r}")


def load_suite(path: str | Path, overrides: dict[str, Any] | None = None) -> Suite:
    """Read and check a suite file; ``overrides`` (``--key=value`` flags) apply to every run."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"suite file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid yaml ({str(exc).splitlines()[0]})") from exc
    protocol = dict(_require(raw, "protocol", path, ""))
    for key in PROTOCOL_KEYS:
        _require(protocol, key, path, "protocol.")
    if int(protocol["min_epochs"]) >= int(protocol["epochs"]):
        raise SuiteError(
            f"{path}: protocol.min_epochs ({protocol['min_epochs']}) must be below protocol.epochs "
            f"({protocol['epochs']})"
        )
    tuning = dict(_require(raw, "tuning", path, ""))
    trials = int(_require(tuning, "trials", path, "tuning."))
    if trials < 1:
        raise SuiteError(f"{path}: 'tuning.trials' must be >= 1, got {trials}")
    datasets = [
        DatasetEntry(d, {}) if isinstance(d, str) else DatasetEntry(str(d["name"]), dict(d.get("config") or {}))
        for d in _require(raw, "datasets", path, "")
    ]
    models = _models(_require(raw, "models", path, ""), path)
    _check_model_datasets(models, datasets, path)
    suite = Suite(
        name=str(raw.get("name") or path.stem),
        path=path.resolve(),
        datasets=datasets,
        models=models,
        protocol=protocol,
        trials=trials,
        tuning={k: v for k, v in tuning.items() if k != "trials"},
        seeds=_seeds(_require(dict(_require(raw, "final", path, "")), "seeds", path, "final."), path),
        extra_config=dict(overrides or {}),
        report=_report_settings(raw.get("report") or {}, path),
    )
    _check_epoch_caps(suite, path)
    return suite


def _check_epoch_caps(suite: Suite, path: Path) -> None:
    """A dataset or model may set its own ``epochs``; like the protocol's, it must leave room past
    ``min_epochs`` for early stopping to fire."""
    for dataset in suite.datasets:
        for model in suite.models_on(dataset):
            cap = suite.epoch_cap_on(dataset.name, model.name)
            if cap <= suite.min_epochs:
                raise SuiteError(
                    f"{path}: the epoch cap of '{model.name}' on '{dataset.name}' ({cap}) must be above "
                    f"protocol.min_epochs ({suite.min_epochs})"
                )


def _report_settings(report: Any, path: Path) -> dict[str, Any]:
    """``report: {paper: str, notes: [str]}``: text the report prints; checked so a typo fails before any run."""
    if not isinstance(report, dict) or set(report) - {"paper", "notes"}:
        raise SuiteError(f"{path}: 'report' takes only 'paper' (text) and 'notes' (a list of texts)")
    notes = report.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise SuiteError(f"{path}: 'report.notes' must be a list of texts")
    return {"paper": str(report.get("paper") or ""), "notes": notes}
