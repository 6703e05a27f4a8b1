"""Safe image decoding, shared by ingest and by uploads: bounded pixels, any mode to RGB, shrunk early.

Every failure is an `UnsupportedImage` with a one-line reason; nothing else escapes for bad input.
"""

from __future__ import annotations

import io
import struct
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.decode_budget import DecodeBudget, DecodeBusy
from core.model.memory import release_freed_memory

# Formats we accept. Everything else (PSD, EPS, ICO, ...) is refused before decoding.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

# A decoded image is cut around its centre to at most this aspect ratio. A 100,000 x 1 strip (a few hundred
# bytes, far under any pixel limit) would otherwise be stretched by CLIP's preprocessing, which scales the
# shorter side up to 224, into a 22,400,000 x 224 image: tens of gigabytes. CLIP looks at the central
# square only, so the cut loses nothing it sees; a panorama's thumbnail keeps a 16:1 band.
MAX_ASPECT = 16
# Beyond MAX_ASPECT a strip is cut; far beyond it, a strip that is also costly to decode at all (its
# decoded pixels, nearly all thrown away by the cut) is refused: a 94 KB PNG of 1 x 49,999,000 pixels.
ABSURD_ASPECT = 4 * MAX_ASPECT
ABSURD_COST = 16 << 20
# After a decode that cost this much, the freed memory is handed back to the system (malloc_trim).
RELEASE_AFTER = 64 << 20
HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

# Our own pixel limit replaces Pillow's global one, which would otherwise raise a
# DecompressionBombError (not an OSError) or only warn, depending on the size.
Image.MAX_IMAGE_PIXELS = None


class UnsupportedImage(ValueError):
    """The bytes are not an image we can safely decode; `reason` is a short human sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class DecodedImage:
    """An RGB image ready for CLIP, plus the original size (after EXIF orientation)."""

    image: Image.Image
    width: int
    height: int
    format: str


def decode_image(
    source: bytes | Path, max_pixels: int, min_side: int = 448, budget: DecodeBudget | None = None
) -> DecodedImage:
    """Decode bytes or a file into RGB, refusing bombs; shrink so the shorter side is about `min_side`.

    `min_side` should be about twice the model's input size: CLIP's own preprocessing then works on a
    small image (3 ms instead of 400 ms for a 24-megapixel photo) with no visible loss. With `budget`,
    the decode first reserves its estimated memory there (DecodeBusy when it stays taken).
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data:
        raise UnsupportedImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            return _decode_opened(image, max_pixels, min_side, budget)
    except (UnsupportedImage, DecodeBusy):
        raise
    except UnidentifiedImageError:
        raise UnsupportedImage("not an image, or an unsupported format") from None
    except Image.DecompressionBombError:
        raise UnsupportedImage("too many pixels (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError) as err:
        raise UnsupportedImage(f"truncated or corrupt image ({_short(err)})") from None
    except MemoryError:
        raise UnsupportedImage("image too large to decode") from None
    except Exception as err:  # decoder plugins raise many other types on crafted files (OverflowError, ...)
        raise UnsupportedImage(f"cannot decode the image ({type(err).__name__}: {_short(err)})") from None


def _decode_opened(
    image: Image.Image, max_pixels: int, min_side: int, budget: DecodeBudget | None
) -> DecodedImage:
    fmt = image.format or "unknown"
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnsupportedImage("image has no pixels")
    if width * height > max_pixels:
        raise UnsupportedImage(
            f"too many pixels ({width}x{height} = {width * height:,} > limit {max_pixels:,})"
        )
    if fmt in ("JPEG", "MPO"):
        # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale: far less work for big photos.
        image.draft("RGB", (min_side, min_side))
    cost = decode_cost(image, min_side)
    if max(image.size) > ABSURD_ASPECT * min(image.size) and cost > ABSURD_COST:
        raise UnsupportedImage(f"aspect ratio too extreme to decode ({width}x{height})")
    reservation: AbstractContextManager[None] = budget.reserve(cost) if budget else nullcontext()
    try:
        with reservation:
            # Inside the reservation: a PNG's EXIF and a GIF's frame count decode the whole image.
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # first frame of an animation
            orientation = image.getexif().get(0x0112, 1)
            image.load()
            # Rotate before the mode conversion: 16-bit scaling and alpha compositing build new images
            # that no longer carry the EXIF block, so transposing after them would silently do nothing.
            image = ImageOps.exif_transpose(image) if orientation != 1 else image
            # Cut and reduced in its own mode first: the conversion then works on what CLIP sees only.
            image = _to_rgb(_reduce_early(crop_aspect(image, MAX_ASPECT), min_side))
            image = shrink(image, min_side)
    finally:
        if cost >= RELEASE_AFTER:
            release_freed_memory()  # else glibc keeps the peak for good (core/model/memory.py)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(image=image, width=width, height=height, format=fmt)


# Bytes per pixel of an image loaded by Pillow in its own mode (RGB is stored as 4 bytes too).
_NATIVE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def decode_cost(image: Image.Image, min_side: int) -> int:
    """An upper estimate of the bytes decoding `image` takes at its peak: the loaded pixels, plus the
    work of converting the part kept by the aspect cut (less when `_reduce_early` shrinks it first)."""
    width, height = image.size
    pixels = width * height
    native = pixels * _NATIVE_BYTES.get(image.mode, 4)
    side = min(width, height)
    kept = min(pixels, side * side * MAX_ASPECT)
    factor = reduce_factor(image, min_side)
    if factor >= 2:
        # Up to two full-size copies in its own mode while reducing, then the reduced image converted.
        return native + kept * 8 + kept // (factor * factor) * 20
    if image.mode in ALPHA_MODES or image.mode == "P":
        per_pixel = 20  # the RGBA copy, the white background, the composite, the RGB result
    elif image.mode in HIGH_BIT_MODES:
        per_pixel = 13  # float32 work array and its temporary, the 8-bit result, RGB
    else:
        per_pixel = 8  # the RGB copy and the first resize step
    return native + kept * per_pixel


def _reduce_early(image: Image.Image, min_side: int) -> Image.Image:
    """A big 16-bit, float or transparent image box-averaged down in its own mode before `_to_rgb`.

    Converting those at full size costs gigabytes for 50 megapixels (float64 copies, alpha compositing),
    from an upload of a few kilobytes. The factor keeps the shorter side at least `min_side` (the box
    average is a fine first step of a downscale); other modes convert at the cost of an RGB image and are
    left to `shrink`."""
    factor = reduce_factor(image, min_side)
    if factor < 2:
        return image
    if image.mode in ("I", "F"):
        return image.reduce(factor)  # a NaN makes its block NaN, black as before
    if image.mode in HIGH_BIT_MODES:  # 16-bit, which Pillow does not reduce
        array = np.asarray(image)
        rows, cols = array.shape[0] // factor * factor, array.shape[1] // factor * factor
        blocks = array[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
        return Image.fromarray(np.rint(blocks.mean(axis=(1, 3))).astype(np.uint16))  # still I;16
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        # Premultiplied, so the average composited on white equals the composite averaged.
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        return rgba.convert("RGBa").reduce(factor).convert("RGBA")
    return image


def reduce_factor(image: Image.Image, min_side: int) -> int:
    """How many times `_reduce_early` shrinks an image (1 = not at all)."""
    return max(1, int(min(image.size) / max(1, min_side)))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit and float scaled (not clipped), alpha composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in HIGH_BIT_MODES:
        # float32, worked in place: a float64 copy and its temporaries cost 30 bytes a pixel.
        array = np.array(image, dtype=np.float32)
        if mode == "F":
            top = 1.0 if array.size and float(np.nanmax(array)) <= 1.0 else 255.0
        elif mode == "I" and array.size and float(array.max()) <= 255:
            top = 255.0
        else:
            top = 65535.0
        np.nan_to_num(array, copy=False)
        array *= 255.0 / top
        array += 0.5
        np.clip(array, 0, 255, out=array)
        return Image.fromarray(array.astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def crop_aspect(image: Image.Image, max_aspect: float) -> Image.Image:
    """The central part of the image whose longer side is at most `max_aspect` times the shorter one."""
    width, height = image.size
    longest = max(1, round(min(width, height) * max_aspect))
    if width > longest:
        left = (width - longest) // 2
        return image.crop((left, 0, left + longest, height))
    if height > longest:
        top = (height - longest) // 2
        return image.crop((0, top, width, top + longest))
    return image


def shrink(image: Image.Image, min_side: int) -> Image.Image:
    """Downscale so the shorter side is `min_side` (never upscale)."""
    width, height = image.size
    shorter = min(width, height)
    if shorter <= min_side:
        return image
    scale = min_side / shorter
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def thumbnail_jpeg(image: Image.Image, longest_side: int) -> bytes:
    """A JPEG thumbnail whose longest side is at most `longest_side`."""
    thumb = image.copy()
    thumb.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return out.getvalue()


def is_image_name(path: Path) -> bool:
    """True when the file name has one of the image suffixes ingest looks at."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:120]
