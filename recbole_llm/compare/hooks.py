"""Extra-result hooks for ``run_jobs`` / ``compare``: fields a model writes beside its checkpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def oie_history(result: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """OIE's AAE/SA history (``<checkpoint>.oie.json``) and the AAE/SA of the best checkpoint.

    Returns ``oie_history`` (the list of entries), ``oie_aae`` / ``oie_sa`` (the ``best`` entry) and
    the random-table references; an empty dict when the run wrote no history (``oie_metrics: False``).
    """
    checkpoint = result.get("saved_model_file")
    path = Path(checkpoint).with_suffix(".oie.json") if checkpoint else None
    if path is None or not path.is_file():
        return {}
    history = json.loads(path.read_text(encoding="utf-8"))["history"]
    best = next((h for h in reversed(history) if h["stage"] == "best"), history[-1] if history else None)
    fields: dict[str, Any] = {"oie_history": history, "oie_history_file": str(path)}
    if best is not None:
        fields.update(
            oie_aae=best["aae"],
            oie_sa=best["sa"],
            oie_aae_random=best.get("aae_random"),
            oie_sa_random=best.get("sa_random"),
        )
    return fields
