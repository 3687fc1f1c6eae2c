"""Append-only JSON-lines store of item profiles, safe to kill and resume.

Line 1 is a header (``"record": "header"``: dataset, backend, model, the model files' hash, prompt
hash, decoding settings, attribute settings, split fingerprint; the generation batch size for
information). Every further line is one item's profile
(``"record": "profile"``: item token, the three sections, ``parsed`` flag, raw output). Lines are
appended, flushed and fsync'ed batch by batch, so a process killed half-way loses at most the
batch in flight; a torn last line (killed mid-write) is cut off on the next open. A rerun skips the
items already stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
# Header keys that must match for a rerun to append to an existing file.
IDENTITY_KEYS = (
    "format",
    "dataset",
    "backend",
    "model",
    "model_hash",
    "prompt_hash",
    "decoding",
    "attributes",
    "split",
)


class ProfileSettingsMismatch(RuntimeError):
    """The file was produced with other settings (model, prompt, decoding, ...)."""


def _repair_tail(path: Path) -> int:
    """Cut a torn (unterminated) last line; returns the number of bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return 0
        chunk = 1 << 16
        position = size
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            data = handle.read(position - start)
            newline = data.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                handle.truncate(keep)
                return size - keep
            position = start
        handle.truncate(0)
        return size


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The file's first line (what produced it), or None for a missing or empty file: how stale profiles are caught."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        return None
    return header if header.get("record") == "header" else None


def read_profiles(path: str | Path) -> dict[str, dict[str, Any]]:
    """Item token -> profile record (the last one wins if an item appears twice)."""
    profiles: dict[str, dict[str, Any]] = {}
    path = Path(path)
    if not path.is_file():
        return profiles
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn last line of a killed writer
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("record") == "profile":
                profiles[str(record["item"])] = record
    return profiles


def check_profile_file(path: str | Path, identity: dict[str, Any], hint: str = "") -> None:
    """Refuse a profile file whose header names another dataset or training split than ``identity``.

    Extrinsic profiles quote the training split's ratings and reviews: a file built on another
    seed's split carries feedback that is validation/test data of this run. Other header
    differences (model, prompt, decoding) are the user's explicit choice of file and pass.
    """
    path = Path(path)
    header = read_header(path)
    if header is None:
        raise ProfileSettingsMismatch(f"{path} has no header line, so its split cannot be checked; {hint}")
    for key, what in (("dataset", "dataset"), ("split", "training split fingerprint")):
        if header.get(key) != identity.get(key):
            raise ProfileSettingsMismatch(
                f"{path} was generated for {what} {header.get(key)!r}, this run has {identity.get(key)!r} "
                f"(another seed or split setting); {hint}"
            )


class ProfileStore:
    """One profile file opened for appending under a fixed header."""

    def __init__(self, path: str | Path, header: dict[str, Any], overwrite: bool = False) -> None:
        self.path = Path(path)
        self.header = {"record": "header", "format": FORMAT_VERSION, **header}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            self.repaired_bytes = _repair_tail(self.path)
            existing = read_header(self.path)
            if existing is None and self.path.stat().st_size > 0:
                raise ProfileSettingsMismatch(f"{self.path} is not a profile file (no header line); pass overwrite.")
            if existing is not None:
                diffs = {
                    k: (existing.get(k), self.header.get(k))
                    for k in IDENTITY_KEYS
                    if existing.get(k) != self.header.get(k)
                }
                if diffs:
                    detail = "; ".join(f"{k}: file has {a!r}, now {b!r}" for k, (a, b) in diffs.items())
                    raise ProfileSettingsMismatch(
                        f"{self.path} was generated with other settings ({detail}). Use another output "
                        "file, or overwrite (--overwrite) to regenerate it."
                    )
                self.done = read_profiles(self.path)
                return
        else:
            self.repaired_bytes = 0
        self._write_lines([self.header])
        self.done = {}

    def _write_lines(self, records: Iterable[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append a batch of profile records durably."""
        stamped = [{"record": "profile", **r} for r in records]
        self._write_lines(stamped)
        for record in stamped:
            self.done[str(record["item"])] = record
