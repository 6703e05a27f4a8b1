"""Which licences are free enough to keep: CC0, public domain, CC BY and CC BY-SA (any version).

Everything else is refused: non-commercial (NC), no-derivatives (ND), fair use, non-free, and anything
that cannot be recognised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORBIDDEN = re.compile(
    r"\b(nc|nd|non ?commercial|no ?derivs|no ?derivatives|fair ?use|non ?free|all rights reserved)\b"
)
_VERSION_OR_PORT = re.compile(r"^(\d+(\.\d+)*|[a-z]{2,3}|migrated|unported)$")  # "4.0", "de", "igo"


@dataclass(frozen=True)
class LicenceVerdict:
    """Whether a licence may be kept; `family` is CC0, PD, CC BY or CC BY-SA when it may."""

    free: bool
    family: str | None
    reason: str


def _normalise(text: str) -> str:
    return re.sub(r"[\s_\-/]+", " ", text.strip().lower())


def _family(text: str) -> str | None:
    norm = _normalise(text)
    if not norm:
        return None
    if _FORBIDDEN.search(norm):
        return "forbidden"
    tokens = norm.split()
    if tokens[0] == "cc0" or norm.startswith(("cc zero", "creative commons zero")):
        return "CC0"
    if tokens[0] == "pd" or norm.startswith("public domain"):
        return "PD"
    if tokens[:2] == ["cc", "by"]:
        rest = tokens[2:]
        family = "CC BY"
        if rest and rest[0] == "sa":
            family, rest = "CC BY-SA", rest[1:]
        if all(_VERSION_OR_PORT.match(token) for token in rest):
            return family
    return None


def classify_licence(short_name: str | None, licence_code: str | None = None) -> LicenceVerdict:
    """Judge a licence from its display name (e.g. 'CC BY-SA 4.0') and/or its code (e.g. 'cc-by-sa-4.0')."""
    names = [text for text in (short_name, licence_code) if text and text.strip()]
    if not names:
        return LicenceVerdict(False, None, "unknown licence")
    families = [_family(text) for text in names]
    label = names[0].strip()
    if "forbidden" in families:
        return LicenceVerdict(False, None, f"non-free licence ({label})")
    for family in families:
        if family is not None:
            return LicenceVerdict(True, family, family)
    return LicenceVerdict(False, None, f"unrecognised licence ({label})")
