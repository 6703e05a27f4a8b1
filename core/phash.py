"""Perceptual hashes of a photo: what stays the same when it is re-encoded, resized or recoloured.

`fingerprint(image)` gives a 256-bit DCT hash (pHash: grey 64x64, the 16x16 lowest frequencies, each
bit "above the median") of the whole picture and of a few crops (CROPS). Comparing the whole of one
photo with the crops of the other (`distance`) finds a lightly cropped copy, which a single hash cannot:
cutting 10 % per side moves a hash as far as a different photo. 256 bits rather than the usual 64: at
64 bits a stereo pair (the same scene from a step aside) is as close as a brightened copy, at 256 bits
it is twice as far (bench/dedup_calibration.py measures it). Hashes are stored as hex in the payload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_SIDE = 16
SAMPLE_SIDE = 64
HASH_BITS = HASH_SIDE * HASH_SIDE
# Photos are hashed from a decode whose shorter side is at least this (ingest decodes no smaller).
MIN_SIDE = 256
# The crops hashed beside the whole photo: fractions of the width and height cut from the left, top,
# right and bottom. Centre crops only: a crop off one side is, to any hash, the same picture as the
# camera moved a step aside (a stereo pair matches it), and that is a similar photo, not a duplicate.
CROPS = tuple((f, f, f, f) for f in (0.025, 0.05, 0.075, 0.10, 0.125, 0.15))


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix of size n (rows are frequencies)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix(SAMPLE_SIDE)


def phash(image: Image.Image) -> int:
    """The 256-bit perceptual hash of an image, as an int."""
    # reducing_gap: a cheap box reduction first, then Lanczos: several times faster than Lanczos alone.
    grey = image.convert("L").resize((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:HASH_SIDE, :HASH_SIDE].ravel()
    # The DC term says only how bright the photo is: it is left out of the median, as pHash does.
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The image with fractions of its width and height cut from the left, top, right and bottom."""
    width, height = image.size
    left, top, right, bottom = box
    return image.crop(
        (
            round(width * left),
            round(height * top),
            width - round(width * right),
            height - round(height * bottom),
        )
    )


@dataclass(frozen=True)
class Fingerprint:
    """The hash of the whole photo and of its centre crops (CROPS order)."""

    whole: int
    crops: tuple[int, ...]

    def to_stored(self) -> list[str]:
        """Hex strings, the whole photo first."""
        return [f"{h:0{HASH_BITS // 4}x}" for h in (self.whole, *self.crops)]

    @classmethod
    def from_stored(cls, value: object) -> Fingerprint | None:
        """Read what `to_stored` wrote; None for anything else (points stored before hashes existed)."""
        if not isinstance(value, list) or not value:
            return None
        try:
            hashes = [int(str(h), 16) for h in value]
        except ValueError:
            return None
        if any(h.bit_length() > HASH_BITS for h in hashes):
            return None
        return cls(hashes[0], tuple(hashes[1:]))


def fingerprint(image: Image.Image) -> Fingerprint:
    """The whole-photo hash and the crop hashes of one image."""
    grey = image.convert("L")
    return Fingerprint(phash(grey), tuple(phash(crop(grey, box)) for box in CROPS))


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes."""
    return (a ^ b).bit_count()


def distance(a: Fingerprint, b: Fingerprint) -> int:
    """How far two photos are, allowing either to be a light crop of the other: the fewest differing
    bits between the whole of one and the whole or a crop of the other (0..HASH_BITS)."""
    best = hamming(a.whole, b.whole)
    for crop in b.crops:
        best = min(best, hamming(a.whole, crop))
    for crop in a.crops:
        best = min(best, hamming(crop, b.whole))
    return best
