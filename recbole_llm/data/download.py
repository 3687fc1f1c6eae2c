"""Download a raw dataset file from its official address: progress bar, size and sha256 checked.

The file is streamed to a temporary file beside the destination and renamed into place only
after its checksum matched, so an interrupted or corrupted download never looks like a raw file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

logger = logging.getLogger(__name__)
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """The download failed or its checksum/size did not match."""


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
            raise DownloadError(f"{url}: received {received} bytes, expected {expected_size}")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DownloadError(f"{url}: sha256 {digest.hexdigest()} does not match the expected {sha256}")
        os.replace(tmp_name, destination)
        logger.info("Downloaded %s to %s (%d bytes)", url, destination, received)
        return destination
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
