"""Download a raw dataset file from its official address: progress bar, size and sha256 checked.

The file is streamed to a temporary file beside the destination and renamed into place only
after its checksum matched, so an interrupted or corrupted download never looks like a raw file.

Zip archives (MIND ships ``MINDsmall_train.zip``) go through :func:`fetch_archive` (kept once
downloaded, so a rerun never downloads them again; verified against a pinned sha256, or, where
none is published, against the one recorded at the first download) and :func:`extract_members`
(the wanted members written beside their destinations and renamed into place; member paths inside
the archive are never used as destinations).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm

logger = logging.getLogger(__name__)
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """The download failed or its checksum/size did not match."""


class ChecksumError(DownloadError):
    """A file's size or sha256 is not the pinned (or first recorded) one."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    destination: str | Path,
    sha256: str | None = None,
    expected_size: int | None = None,
    timeout: float = 60.0,
    show_progress: bool = True,
) -> Path:
    """Fetch ``url`` to ``destination`` (kept if already there with the right checksum).

    Raises :class:`DownloadError` on HTTP/network errors, a size mismatch or a sha256 mismatch;
    the destination is then left untouched.
    """
    destination = Path(destination)
    if destination.is_file() and (sha256 is None or sha256_of(destination) == sha256):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - official http(s) URLs
            except OSError as err:
                raise DownloadError(f"Cannot download {url}: {err}") from err
            with response:
                total = int(response.headers.get("Content-Length") or 0) or expected_size
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=destination.name, disable=not show_progress
                ) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        if expected_size is not None and received != expected_size:
            raise ChecksumError(f"{url}: received {received} bytes, expected {expected_size}")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ChecksumError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256}")
        os.replace(tmp_name, destination)
        logger.info("Downloaded %s to %s (%d bytes)", url, destination, received)
        return destination
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def recorded_sha256_path(archive: str | Path) -> Path:
    """``<archive>.sha256``: the digest recorded at the first download (``sha256sum -c`` format)."""
    archive = Path(archive)
    return archive.with_name(archive.name + ".sha256")


def _recorded_sha256(archive: Path) -> str | None:
    record = recorded_sha256_path(archive)
    if not record.is_file():
        return None
    return record.read_text(encoding="utf-8").split()[0].lower()


def _verify_present(archive: Path, sha256: str | None, size: int | None, pinned: bool) -> None:
    """Check a zip that is already on disk; the error says how to get a good copy."""
    actual_size = archive.stat().st_size
    if size is not None and actual_size != size:
        raise ChecksumError(f"{archive}: {actual_size} bytes, expected {size}; delete it to download again")
    if sha256 is not None and (digest := sha256_of(archive)) != sha256:
        origin = (
            "the pinned one" if pinned else f"the one recorded at its first download ({recorded_sha256_path(archive)})"
        )
        raise ChecksumError(f"{archive}: sha256 {digest} is not {origin} {sha256}; delete it to download again")


def _record_first_download(archive: Path) -> str:
    """Write ``<archive>.sha256`` and print digest and size: no checksum is published for this file."""
    digest = sha256_of(archive)
    record = recorded_sha256_path(archive)
    record.write_text(f"{digest}  {archive.name}\n", encoding="utf-8")
    print(
        f"{archive.name}: no published sha256 to check it against; {archive.stat().st_size:,} bytes, sha256 "
        f"{digest}; recorded in {record} (a later copy must match it)",
        file=sys.stderr,
        flush=True,
    )
    return digest


def _download_any(addresses: Sequence[str], destination: Path, sha256: str | None, size: int | None, **kwargs) -> None:
    """Download from the first address that answers; a checksum mismatch stops at once."""
    failures = []
    for address in addresses:
        try:
            download_file(address, destination, sha256, size, **kwargs)
            return
        except ChecksumError:
            raise
        except DownloadError as err:
            failures.append(str(err))
            logger.warning("%s", err)
    raise DownloadError("; ".join(failures))


def fetch_archive(
    url: str,
    destination: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    mirrors: Sequence[str] = (),
    show_progress: bool = True,
) -> Path:
    """The zip archive at ``destination``, downloaded from ``url`` (else each mirror in turn) when missing.

    A copy already there is kept (never downloaded again) once its size and sha256 check out. The
    sha256 checked is ``sha256`` when one is pinned; otherwise the one recorded beside the archive
    (``<archive>.sha256``) at its first download, which is then written and printed with the size,
    so a later re-download or a swapped file that differs is refused. Raises :class:`ChecksumError`
    on a mismatch, :class:`DownloadError` when no address answers or the file is not a zip.
    """
    destination = Path(destination)
    expected = sha256.lower() if sha256 else _recorded_sha256(destination)
    downloaded = not destination.is_file()
    if downloaded:
        _download_any((url, *mirrors), destination, expected, size, show_progress=show_progress)
    else:
        _verify_present(destination, expected, size, pinned=bool(sha256))
    if not zipfile.is_zipfile(destination):
        if downloaded:
            destination.unlink()
            raise DownloadError(f"{url}: the downloaded file is not a zip archive (removed)")
        raise DownloadError(f"{destination}: not a zip archive; delete it to download again")
    if expected is None:
        _record_first_download(destination)
    return destination


def _members_by_name(archive: zipfile.ZipFile, path: Path, names: Sequence[str]) -> dict[str, zipfile.ZipInfo]:
    """The one file member whose base name is each of ``names`` (MIND's zips hold them at the top)."""
    found: dict[str, list[zipfile.ZipInfo]] = {}
    for info in archive.infolist():
        if not info.is_dir():
            found.setdefault(PurePosixPath(info.filename).name, []).append(info)
    chosen = {}
    for name in names:
        matches = found.get(name, [])
        if len(matches) != 1:
            listed = ", ".join(sorted(found)) or "nothing"
            raise DownloadError(f"{path}: expected one member named {name}, found {len(matches)} (it holds {listed})")
        chosen[name] = matches[0]
    return chosen


def extract_members(archive: str | Path, members: Mapping[str, str | Path]) -> dict[str, Path]:
    """Extract ``{member base name: destination}`` from a zip; returns the destinations.

    Every member is written to a temporary file beside its destination (the zip's CRC is checked
    while reading) and the files are renamed into place only after all of them were read, so a
    corrupt archive or a full disk leaves no destination half-written. Names inside the archive
    never decide where a file is written.
    """
    path = Path(archive)
    targets = {name: Path(dest) for name, dest in members.items()}
    pending: list[tuple[str, Path]] = []
    try:
        with zipfile.ZipFile(path) as zipped:
            chosen = _members_by_name(zipped, path, list(targets))
            for name, info in chosen.items():
                target = targets[name]
                target.parent.mkdir(parents=True, exist_ok=True)
                handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
                pending.append((tmp_name, target))
                with os.fdopen(handle, "wb") as out, zipped.open(info) as source:
                    shutil.copyfileobj(source, out, _CHUNK)
        for tmp_name, target in pending:
            os.replace(tmp_name, target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise DownloadError(f"{path}: not a readable zip archive ({err}); delete it to download again") from None
    finally:
        for tmp_name, _ in pending:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    logger.info("Extracted %s from %s", ", ".join(targets), path)
    return targets
