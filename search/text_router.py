"""Which text tower a query goes to: by script, not by language.

A query with any letter outside the Latin script (Cyrillic, Greek, Armenian, Hebrew, Arabic, Devanagari,
Thai, CJK, kana, Hangul, ...) goes to the multilingual tower; anything else (English, Latin-script
languages, digits, punctuation, emoji) to CLIP's own English tower, the exact teacher the multilingual
one imitates. Language identification is unreliable on one- to three-word queries; the script is not.
A client that knows better (a German query, say) chooses the tower itself (`text_encoder`).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Literal

TextEncoder = Literal["auto", "clip", "multilingual"]
TEXT_ENCODERS: tuple[str, ...] = ("auto", "clip", "multilingual")

# Letters that belong to no script of their own (ordinal indicators, modifier letters such as ʰ):
# they say nothing about the language.
_NEUTRAL_LETTERS = frozenset("ªº")


def needs_multilingual(text: str) -> bool:
    """Whether `text` holds a letter of a script other than Latin."""
    return any(_foreign_letter(char) for char in text)


@lru_cache(maxsize=4096)
def _foreign_letter(char: str) -> bool:
    category = unicodedata.category(char)
    if not category.startswith("L") or category == "Lm" or char in _NEUTRAL_LETTERS:
        return False
    # Every Latin letter's name says so, the full-width forms' too; compatibility forms (mathematical
    # 𝐀, ligatures) are judged by the letters they stand for.
    folded = unicodedata.normalize("NFKC", char)
    return any(
        unicodedata.category(c).startswith("L") and "LATIN" not in unicodedata.name(c, "") for c in folded
    )


def auto_choice(text: str) -> Literal["clip", "multilingual"]:
    """The tower `auto` picks for `text`."""
    return "multilingual" if needs_multilingual(text) else "clip"
