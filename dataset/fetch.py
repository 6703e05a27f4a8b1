"""Download one candidate: stream to a temporary file, check it, then rename it into place."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from dataset.candidate import Candidate
from dataset.http import PoliteSession
from dataset.verify import ImageRejectedError, verify_image

MAX_BYTES = 40 * 1024 * 1024
CHUNK = 64 * 1024
ACCEPT_IMAGES = "image/jpeg, image/png;q=0.9, */*;q=0.1"


def part_path(folder: Path, file_name: str) -> Path:
    """Where a download is written before it is verified (hidden, so nothing ingests it)."""
    return folder / f".{file_name}.part"


def download(session: PoliteSession, candidate: Candidate, folder: Path) -> Path:
    """Fetch, verify and store `candidate` as `folder/<file_name>`; ImageRejectedError when not kept.

    Network failures (HttpError, HostUnreachableError) propagate; nothing is left behind in either case.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / candidate.file_name
    tmp = part_path(folder, candidate.file_name)
    try:
        response = session.get(candidate.download_url, stream=True, headers={"Accept": ACCEPT_IMAGES})
        with response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            encoded = response.headers.get("Content-Encoding", "identity").lower() not in {"", "identity"}
            received = 0
            with tmp.open("wb") as handle:
                try:
                    for chunk in response.iter_content(CHUNK):
                        received += len(chunk)
                        if received > MAX_BYTES:
                            raise ImageRejectedError(f"larger than {MAX_BYTES // 2**20} MB")
                        handle.write(chunk)
                except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as err:
                    raise ImageRejectedError(
                        f"truncated download after {received} bytes ({type(err).__name__})"
                    ) from None
        if expected is not None and not encoded and received != expected:
            raise ImageRejectedError(f"truncated download ({received} of {expected} bytes)")
        verify_image(
            tmp, expected_format=candidate.expected_format, expected_aspect=candidate.expected_aspect
        )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
