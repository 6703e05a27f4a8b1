"""Safe image decoding, shared by ingest and by uploads: bounded pixels, any mode to RGB, shrunk early.

Every failure is an `UnsupportedImage` with a one-line reason; nothing else escapes for bad input.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats we accept. Everything else (PSD, EPS, ICO, ...) is refused before decoding.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

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


def decode_image(source: bytes | Path, max_pixels: int, min_side: int = 448) -> DecodedImage:
    """Decode bytes or a file into RGB, refusing bombs; shrink so the shorter side is about `min_side`.

    `min_side` should be about twice the model's input size: CLIP's own preprocessing then works on a
    small image (3 ms instead of 400 ms for a 24-megapixel photo) with no visible loss.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data:
        raise UnsupportedImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            return _decode_opened(image, max_pixels, min_side)
    except UnsupportedImage:
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


def _decode_opened(image: Image.Image, max_pixels: int, min_side: int) -> DecodedImage:
    fmt = image.format or "unknown"
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnsupportedImage("image has no pixels")
    if width * height > max_pixels:
        raise UnsupportedImage(
            f"too many pixels ({width}x{height} = {width * height:,} > limit {max_pixels:,})"
        )
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # first frame of an animation
    orientation = image.getexif().get(0x0112, 1)
    if fmt in ("JPEG", "MPO"):
        # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale: far less work for big photos.
        image.draft("RGB", (min_side, min_side))
    image.load()
    # Rotate before the mode conversion: 16-bit scaling and alpha compositing build new images that
    # no longer carry the EXIF block, so transposing after them would silently do nothing.
    image = ImageOps.exif_transpose(image) if orientation != 1 else image
    image = _to_rgb(image)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    image = shrink(image, min_side)
    return DecodedImage(image=image, width=width, height=height, format=fmt)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit and float scaled (not clipped), alpha composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode == "F":
            top = 1.0 if array.size and float(np.nanmax(array)) <= 1.0 else 255.0
        elif mode == "I" and array.size and float(array.max()) <= 255:
            top = 255.0
        else:
            top = 65535.0
        scaled = np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


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
