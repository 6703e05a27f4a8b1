"""`python -m ingest --part i/n`: one of n disjoint shares of the library, chosen by content hash.

Several ingest jobs (on several GPU machines) fill one Qdrant server or cluster together, each started
with its own part. A photo's part depends only on its bytes (the SHA-256 the point id is made from), so
the parts are disjoint and complete, and the same on every run and every machine; renamed, copied or
moved photos stay in their part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Part:
    """Part `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"part {self.index}/{self.count}: need 1 <= i <= n")

    def holds(self, sha256: str) -> bool:
        """True when the photo with this SHA-256 (hex) belongs to this part."""
        return int(sha256[:16], 16) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_part(text: str) -> Part:
    """`"2/4"` -> Part(2, 4); ValueError with a readable message otherwise."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"expected i/n such as 1/4, got {text!r}")
    return Part(int(match.group(1)), int(match.group(2)))
