"""Checks that a downloaded body is the image it should be, before it is kept."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

MIN_BYTES = 1024
MIN_SIDE = 200
ASPECT_TOLERANCE = 0.03
ALLOWED_FORMATS = frozenset({"JPEG", "PNG"})


class ImageRejectedError(ValueError):
    """The file is not kept; the message says why."""


def verify_image(
    path: Path,
    *,
    expected_format: str | None = None,
    expected_aspect: float | None = None,
) -> tuple[int, int]:
    """Fully decode `path`, check format, size and aspect; (width, height), else ImageRejectedError."""
    size = path.stat().st_size
    if size < MIN_BYTES:
        raise ImageRejectedError(f"tiny file ({size} bytes)")
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated body must fail here, whatever else set this
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image_format = image.format
                image.verify()
            with Image.open(path) as image:
                image.load()
                width, height = image.size
    except UnidentifiedImageError:
        raise ImageRejectedError("not a decodable image") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageRejectedError("too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageRejectedError(f"broken or truncated image ({err})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    if image_format not in ALLOWED_FORMATS:
        raise ImageRejectedError(f"unexpected format {image_format}")
    if expected_format and image_format != expected_format:
        raise ImageRejectedError(f"{image_format} where {expected_format} was expected")
    if min(width, height) < MIN_SIDE:
        raise ImageRejectedError(f"too small ({width}x{height})")
    if expected_aspect:
        aspect = width / height
        if abs(aspect - expected_aspect) / expected_aspect > ASPECT_TOLERANCE:
            raise ImageRejectedError(
                f"size {width}x{height} does not match the expected aspect {expected_aspect:.3f}"
            )
    return width, height
