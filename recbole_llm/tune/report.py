"""What a search leaves behind: the trials table (csv and markdown) and ``best.yaml``, which reruns the best trial."""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from recbole_llm.tune.space import plain

if TYPE_CHECKING:
    from ray.tune import ResultGrid

# Ray's per-trial columns (last report) -> the names of our table.
_LAST_REPORT_COLUMNS = {
    "logdir": "trial_dir",
    "best_valid_score": "best_valid_score",
    "epoch": "epochs",
    "finished": "finished",
    "time_total_s": "seconds",
    "resumed_seconds": "resumed_seconds",  # a trial that went on from a snapshot: its time before it
    "node_id": "node",
}


@dataclass
class TuneSummary:
    """What a search produced."""

    output_dir: Path
    trials: pd.DataFrame
    best: dict[str, Any] | None  # the best trial's row (None when every trial failed)
    best_yaml: Path | None
    csv_path: Path
    markdown_path: Path
    metric: str
    mode: str
    rerun_command: str | None = None


@dataclass
class SearchRecord:
    """What the report says about a search (its header) and what ``best.yaml`` starts from."""

    model: str
    dataset: str
    metric: str
    mode: str
    command: str
    setup: str  # "Search: random, scheduler asha (...), ..." line
    searched: Sequence[str]
    base_settings: dict[str, Any] = field(default_factory=dict)  # config files' values, then fixed settings
    elapsed_s: float = 0.0
    entry_flags: str = ""  # flags the rerun command needs before --model (``--task=stock``)


def _error_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _outcomes(results, searched: Sequence[str]) -> pd.DataFrame:
    """Per trial what only Ray's Result objects know: its sampled values and its error (also with no report)."""
    rows = [
        {
            "trial": (result.metrics or {}).get("trial_id") or Path(result.path).name,
            **{f"param.{k}": plain((result.config or {}).get(k)) for k in searched},
            "error": _error_line(result.error),
            "trial_dir": str(result.path),
        }
        for result in results
    ]
    return pd.DataFrame(rows, columns=["trial", *(f"param.{k}" for k in searched), "error", "trial_dir"])


def _best_reports(results, mode: str) -> pd.DataFrame:
    """Each trial's best validation report (Ray's table): its epoch and RecBole metrics (``recall@10`` ...)."""
    best = results.get_dataframe(filter_metric="valid_score", filter_mode=mode)
    metrics = [c for c in best.columns if "@" in str(c)]
    best = best.reindex(columns=["logdir", "epoch", *metrics])
    return best.rename(columns={"logdir": "trial_dir", "epoch": "best_epoch", **{m: f"valid.{m}" for m in metrics}})


def trials_table(results: ResultGrid, searched: Sequence[str], mode: str) -> pd.DataFrame:
    """One row per trial, best first: values, best validation, epochs run, status, error, metrics, folder."""
    last = results.get_dataframe().reindex(columns=list(_LAST_REPORT_COLUMNS)).rename(columns=_LAST_REPORT_COLUMNS)
    table = _outcomes(results, searched).merge(last, on="trial_dir", how="left")
    table = table.merge(_best_reports(results, mode), on="trial_dir", how="left")
    table["epochs"] = table["epochs"].fillna(0).astype(int)
    resumed = table.pop("resumed_seconds").astype(float).fillna(0.0)
    table["seconds"] = (table["seconds"].astype(float) + resumed).round(1)
    table["status"] = np.select(
        [table["error"] != "", table["finished"].astype("boolean").fillna(False).to_numpy(dtype=bool)],
        ["error", "completed"],
        "stopped early",
    )
    first = _first_columns(searched)
    table = table[[*first, *(c for c in table.columns if c.startswith("valid.")), "trial_dir"]]
    table = table.sort_values("best_valid_score", ascending=mode == "min", na_position="last", kind="stable")
    return table.reset_index(drop=True)


def _first_columns(searched: Sequence[str]) -> list[str]:
    return [
        "trial",
        *(f"param.{k}" for k in searched),
        "best_valid_score",
        "best_epoch",
        "epochs",
        "status",
        "error",
        "seconds",
        "node",
    ]


def empty_trials_table(searched: Sequence[str]) -> pd.DataFrame:
    """The table of a search that ran no trial (a ledger held them all), with the columns of any other."""
    return pd.DataFrame(columns=[*_first_columns(searched), "trial_dir"])


def pick_best(table: pd.DataFrame) -> dict[str, Any] | None:
    """Best completed trial (its yaml reproduces it exactly); else the best one stopped early."""
    for status in ("completed", "stopped early"):
        candidates = table[(table["status"] == status) & table["best_valid_score"].notna()]
        if len(candidates):
            return candidates.iloc[0].to_dict()
    return None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(table: pd.DataFrame, header: list[str]) -> str:
    shown = table.drop(columns=["trial_dir"], errors="ignore")
    lines = [*header, "", "| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _yaml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    value = plain(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _write_best_yaml(path: Path, best: dict[str, Any], record: SearchRecord, rerun: str) -> None:
    """The config that reproduces ``best``: dataset, config files' values, fixed settings, the sampled values."""
    values: dict[str, Any] = {"dataset": record.dataset, **record.base_settings}
    values.update({k: plain(best[f"param.{k}"]) for k in record.searched})
    if best["status"] != "completed":
        values["epochs"] = int(best["epochs"])  # reproduce what was observed, not an unseen longer run
    header = [
        (
            f"Best trial {best['trial']} of a Ray Tune search ({best['status']}): {record.metric} = "
            f"{best['best_valid_score']:.6g} on the validation split (epoch {best['best_epoch']:.0f})."
        ),
        f"Search command: {record.command}",
        f"Rerun: {rerun}",
    ]
    body = yaml.safe_dump(_yaml_safe(values), sort_keys=False, default_flow_style=False)
    path.write_text("\n".join(f"# {line}" for line in header) + "\n" + body, encoding="utf-8")


def _header(table: pd.DataFrame, record: SearchRecord) -> list[str]:
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    lines = [
        (
            f"Ray Tune search: {record.model} on {record.dataset}, metric {record.metric} on the validation split "
            f"({record.mode})"
        ),
        f"Command: `{record.command}`",
        record.setup,
        f"Trials: {len(table)} ({', '.join(f'{v} {k}' for k, v in counts.items())}), {record.elapsed_s:.0f} s in all",
    ]
    if counts.get("error"):
        lines.append(
            "Errors: the full traceback of a failed trial is in `error.txt` of its folder "
            "(column trial_dir of trials.csv)"
        )
    return lines


def write_report(output_dir: Path, table: pd.DataFrame, record: SearchRecord) -> TuneSummary:
    """``trials.csv``, ``trials.md`` and (when a trial produced a result) ``best.yaml`` in ``output_dir``."""
    csv_path, markdown_path = output_dir / "trials.csv", output_dir / "trials.md"
    table.to_csv(csv_path, index=False)
    header = _header(table, record)
    best, best_yaml, rerun = pick_best(table), None, None
    if best is not None:
        best_yaml = output_dir / "best.yaml"
        rerun = (
            f"python run_recbole_llm.py {record.entry_flags + ' ' if record.entry_flags else ''}"
            f"--model={record.model} --dataset={record.dataset} "
            f"--config_files={shlex.quote(str(best_yaml))}"
        )
        _write_best_yaml(best_yaml, best, record, rerun)
        header.insert(
            4,
            f"Best: trial {best['trial']}, {record.metric} = {best['best_valid_score']:.6g}; "
            f"config `{best_yaml.name}`; rerun: `{rerun}`",
        )
    else:
        header.insert(4, "Best: none (no trial produced a validation result)")
    markdown = _markdown(table, [f"# {header[0]}", "", *[f"- {line}" for line in header[1:]]])
    markdown_path.write_text(markdown, encoding="utf-8")
    return TuneSummary(output_dir, table, best, best_yaml, csv_path, markdown_path, record.metric, record.mode, rerun)
