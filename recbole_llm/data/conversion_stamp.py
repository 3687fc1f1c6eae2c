"""The stamp of a named dataset's conversion: what produced ``<data_path>/<name>/``, to tell when it is stale.

A converted folder is reused by later runs, so a change of the converter's code or parameters, or of a
raw file, would otherwise go on serving the old conversion. :func:`conversion_fingerprint` records
what decides the output, cheaply enough to be recomputed on every run:

- the registry's ``convert`` function (module and qualified name) and its parameters: the plain values
  it reads from its closure or from module constants (``GLOBO_SUBSET``, ``GAMES_SAMPLE``, ...);
- the code: the ``convert`` function's own source and that of every ``dataset_converters`` module it
  imports, transitively (``_common`` included). Sources are hashed as their syntax tree without
  docstrings, so comment, docstring and formatting edits do not force a reconversion;
- each raw file's size and modification time, and its content hash (sha256), taken once when it is
  converted: a later run compares size and time only, and hashes a file only when its time moved (a copy,
  a re-sync of a shared folder), so an untouched content is not converted again (which would also drop
  what was derived from the old folder, e.g. hours of LLM profiles); the stamp then takes the new time.

:func:`stale_parts` names what differs between a stored stamp and the current fingerprint.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import os
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

STAMP_FILE = ".conversion.json"
#: Bump when the fingerprint's content changes meaning: every stamped folder is then reconverted once.
STAMP_VERSION = 1
_PACKAGE = "dataset_converters"
_NOT_PLAIN = object()


def source_digest(source: str) -> str:
    """sha256 of the syntax tree of ``source`` without docstrings (comments and layout never reach it)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode("utf-8")).hexdigest()


def _converter_imports(tree: ast.AST, inside_package: bool = False) -> set[str]:
    """Names of the ``dataset_converters`` modules that ``tree`` imports (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == _PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and inside_package:
                module = f"{_PACKAGE}.{module}".rstrip(".")
            if module.split(".")[0] == _PACKAGE:  # the module, and names in it that are modules themselves
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names if _module_file(f"{module}.{a.name}"))
    return found


@cache
def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(_PACKAGE)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def _module_file(module: str) -> Path | None:
    """The source file of a ``dataset_converters`` module, found without importing it."""
    root = _package_dir()
    if root is None:
        return None
    base = root.joinpath(*module.split(".")[1:])
    for path in (base.with_suffix(".py") if base != root else None, base / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


@cache
def _module_digest(path: Path, mtime_ns: int, size: int) -> tuple[str, frozenset[str]]:
    """(source digest, converter modules it imports) of one module file; cached per file version."""
    source = path.read_text(encoding="utf-8")
    return source_digest(source), frozenset(_converter_imports(ast.parse(source), inside_package=True))


def converter_sources(convert: Callable) -> dict[str, str]:
    """Digest of ``convert``'s source and of each ``dataset_converters`` module it reaches through imports."""
    try:
        own = inspect.getsource(convert)
    except (OSError, TypeError):  # no source (a builtin or a callable object): its identity still counts
        return {}
    digests = {"the convert function": source_digest(own)}
    pending = sorted(_converter_imports(ast.parse(textwrap.dedent(own))))
    while pending:
        path = _module_file(pending.pop())
        label = f"{_PACKAGE}/{path.relative_to(_package_dir()).as_posix()}" if path is not None else None
        if label is None or label in digests:
            continue
        stat = path.stat()
        digests[label], imported = _module_digest(path, stat.st_mtime_ns, stat.st_size)
        pending.extend(sorted(imported))
    return digests


def _plain(value: Any) -> Any:
    """``value`` if it is JSON data (numbers, strings, None, lists/tuples/dicts of them), else a marker."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _plain(v) for k, v in value.items()}
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items.values()) else items
    return _NOT_PLAIN


def converter_parameters(convert: Callable) -> dict[str, Any]:
    """The plain values ``convert`` reads from its closure or its module's globals (modules, functions left out)."""
    try:
        names = inspect.getclosurevars(convert)
    except TypeError:
        return {}
    values = {**names.globals, **names.nonlocals}
    plain = {name: _plain(value) for name, value in sorted(values.items())}
    return {name: value for name, value in plain.items() if value is not _NOT_PLAIN}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def raw_file_stats(found: dict[str, Path], with_hashes: bool = False) -> dict[str, dict[str, Any]]:
    """role -> path, size and modification time (ns) of each raw file found (and its sha256 if asked)."""
    stats = {}
    for role, path in sorted(found.items()):
        stat = Path(path).stat()
        stats[role] = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if with_hashes:
            stats[role]["sha256"] = file_sha256(path)
    return stats


def conversion_fingerprint(
    name: str, convert: Callable, found: dict[str, Path], with_hashes: bool = False
) -> dict[str, Any]:
    """What decides the output of converting ``found`` with ``convert`` (JSON data, as stored in the stamp);
    ``with_hashes`` (for the stamp written by a conversion) adds each raw file's content hash."""
    identity = f"{getattr(convert, '__module__', '?')}.{getattr(convert, '__qualname__', type(convert).__qualname__)}"
    fingerprint = {
        "version": STAMP_VERSION,
        "dataset": name,
        "converter": identity,
        "parameters": converter_parameters(convert),
        "sources": converter_sources(convert),
        "raw_files": raw_file_stats(found, with_hashes),
    }
    return json.loads(json.dumps(fingerprint))  # tuples as lists, as they read back from the stamp


def read_stamp(folder: Path) -> dict[str, Any] | None:
    """The stored fingerprint, or None when there is none (or it is unreadable: treated as missing)."""
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def write_stamp(folder: Path, fingerprint: dict[str, Any]) -> None:
    """Written beside and renamed into place: a run reading the stamp while another refreshes its times (Ray
    trials start together) must not see half a file, which would read as no stamp and force a reconversion."""
    partial = folder / f"{STAMP_FILE}.{os.getpid()}.tmp"
    partial.write_text(json.dumps(fingerprint, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(partial, folder / STAMP_FILE)


def _changed_values(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for each differing key, one level into nested dicts."""
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, "unset"), new.get(key, "unset")
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict) and not prefix:
            changes.extend(_changed_values(before, after, f"{key}."))
        else:
            changes.append(f"{prefix}{key}: {before!r} -> {after!r}")
    return changes


def _same_content(before: dict, after: dict) -> bool:
    """Whether a raw file is unchanged: same size and time, or (time moved) the same stored content hash."""
    if before.get("size") != after["size"]:
        return False
    if before.get("mtime_ns") == after["mtime_ns"]:
        return True
    return "sha256" in before and file_sha256(after["path"]) == before["sha256"]


def _changed_raw_files(old: dict, new: dict) -> list[str]:
    changes = []
    for role in sorted(set(old) | set(new)):
        before, after = old.get(role), new.get(role)
        if before is None or after is None:
            changes.append(f"raw file '{role}' {'added' if before is None else 'no longer found'}")
        elif not _same_content(before, after):
            changes.append(f"raw file '{role}' ({after['path']}) has another size, modification time or content")
    return changes


def with_current_times(stamp: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
    """The up-to-date ``stamp`` with the raw files' current paths and times (their hashes kept), or None when
    nothing moved: written back, a moved time is hashed once, not on every run."""
    raw = stamp.get("raw_files") or {}
    updated = {role: {**raw.get(role, {}), **now} for role, now in current["raw_files"].items()}
    return {**stamp, "raw_files": updated} if updated != raw else None


def stale_parts(stamp: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a stored stamp and the current fingerprint, in words; [] when up to date."""
    if stamp.get("version") != current["version"]:
        return [f"stamp format {stamp.get('version')} -> {current['version']}"]
    changes = []
    if stamp.get("converter") != current["converter"]:
        changes.append(f"converter {stamp.get('converter')} -> {current['converter']}")
    changes += [f"parameter {c}" for c in _changed_values(stamp.get("parameters") or {}, current["parameters"])]
    old_sources = stamp.get("sources") or {}
    changes += [
        f"source of {label} changed"
        for label in sorted(set(old_sources) | set(current["sources"]))
        if old_sources.get(label) != current["sources"].get(label)
    ]
    return changes + _changed_raw_files(stamp.get("raw_files") or {}, current["raw_files"])
