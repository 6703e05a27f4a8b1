"""Perceptual hashes of a photo: what stays the same when it is re-encoded, resized or recoloured.

`fingerprint(image)` gives a 64-bit DCT hash (pHash: grey 32x32, the 8x8 lowest frequencies, each bit
"above the median") of the whole picture and of three centre crops (5, 10 and 15 % cut from every
side). Comparing the whole of one photo with the crops of the other (`distance`) finds a lightly cropped
copy, which a single hash cannot: cutting 10 % per side moves a pHash 18-28 bits, as far as a different
photo. Hashes are stored as 16 hex digits in the payload (`core/payload.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_SIDE = 8
SAMPLE_SIDE = 32
# Fractions of width and height cut from every side for the crop hashes.
CROPS = (0.05, 0.10, 0.15)


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix of size n (rows are frequencies)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix(SAMPLE_SIDE)


def phash(image: Image.Image) -> int:
    """The 64-bit perceptual hash of an image, as an int."""
    grey = image.convert("L").resize((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:HASH_SIDE, :HASH_SIDE].ravel()
    # The DC term says only how bright the photo is: it is left out of the median, as pHash does.
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """The image with `fraction` of its width and height cut from every side."""
    width, height = image.size
    dx, dy = round(width * fraction), round(height * fraction)
    return image.crop((dx, dy, width - dx, height - dy))


@dataclass(frozen=True)
class Fingerprint:
    """The hash of the whole photo and of its centre crops (CROPS order)."""

    whole: int
    crops: tuple[int, ...]

    def to_stored(self) -> list[str]:
        """Hex strings, the whole photo first."""
        return [f"{h:016x}" for h in (self.whole, *self.crops)]

    @classmethod
    def from_stored(cls, value: object) -> Fingerprint | None:
        """Read what `to_stored` wrote; None for anything else (points stored before hashes existed)."""
        if not isinstance(value, list) or not value:
            return None
        try:
            hashes = [int(str(h), 16) for h in value]
        except ValueError:
            return None
        return cls(hashes[0], tuple(hashes[1:]))


def fingerprint(image: Image.Image) -> Fingerprint:
    """The whole-photo hash and the crop hashes of one image."""
    return Fingerprint(phash(image), tuple(phash(centre_crop(image, f)) for f in CROPS))


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes."""
    return (a ^ b).bit_count()


def distance(a: Fingerprint, b: Fingerprint) -> int:
    """How far two photos are, allowing either to be a centre crop of the other: the fewest differing
    bits between the whole of one and the whole or a crop of the other."""
    best = hamming(a.whole, b.whole)
    for crop in b.crops:
        best = min(best, hamming(a.whole, crop))
    for crop in a.crops:
        best = min(best, hamming(crop, b.whole))
    return best
