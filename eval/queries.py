"""The text queries for text -> image: a JSON Lines file, one query per line.

    {"query": "waterfalls in a forest", "language": "en", "relevant": ["waterfalls_lakes/a.jpg"], "group": "w1"}

`query` (text) and `relevant` (photo paths, as the library stores them: relative to IMAGES_DIR) are
required; `language` (default "en") and `group` are optional. Queries with the same `group` are the same
query in other languages (for the Russian / English ratio); without `group`, queries with the same set of
relevant photos are grouped. Blank lines and lines starting with `#` are skipped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


class QueriesFileError(ValueError):
    """The queries file is missing or malformed; the message names the line."""


@dataclass(frozen=True)
class TextQuery:
    """One query: its text, language, relevant photo paths and group."""

    text: str
    language: str
    relevant: tuple[str, ...]
    group: str
    line: int


def read_queries(path: Path) -> list[TextQuery]:
    """Parse and check the queries file; QueriesFileError names the first bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise QueriesFileError(f"cannot read the queries file {path}: {err}") from err
    queries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            raw: Any = json.loads(line)
        except json.JSONDecodeError as err:
            raise QueriesFileError(f"{where}: not a JSON object: {err}") from err
        if not isinstance(raw, dict):
            raise QueriesFileError(f"{where}: expected a JSON object")
        text = raw.get("query")
        if not isinstance(text, str) or not text.strip():
            raise QueriesFileError(f"{where}: 'query' must be a non-empty text")
        relevant = raw.get("relevant")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(p, str) and p for p in relevant)
        ):
            raise QueriesFileError(f"{where}: 'relevant' must be a non-empty list of photo paths")
        language = raw.get("language", "en")
        if not isinstance(language, str) or not language.strip():
            raise QueriesFileError(f"{where}: 'language' must be a text such as 'en' or 'ru'")
        paths = tuple(sorted({PurePosixPath(p.replace("\\", "/")).as_posix() for p in relevant}))
        group = raw.get("group")
        if group is not None and not isinstance(group, str | int):
            raise QueriesFileError(f"{where}: 'group' must be a text or a number")
        queries.append(
            TextQuery(
                text.strip(),
                language.strip().lower(),
                paths,
                str(group) if group is not None else "\n".join(paths),
                number,
            )
        )
    if not queries:
        raise QueriesFileError(f"{path}: no queries")
    return queries


def language_pairs(
    queries: list[TextQuery], first: str = "ru", second: str = "en"
) -> list[tuple[TextQuery, TextQuery]]:
    """(first-language, second-language) queries of the same group, one pair per group that has both."""
    by_group: dict[str, dict[str, TextQuery]] = defaultdict(dict)
    for query in queries:
        by_group[query.group].setdefault(query.language, query)
    return [(g[first], g[second]) for g in by_group.values() if first in g and second in g]
