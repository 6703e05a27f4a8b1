"""Real photos nobody here made (scikit-image and scikit-learn sample images) and the edits a duplicate is
made of: re-encoded, resized, cropped, recoloured. Used to calibrate and test near-duplicate detection.

Needs scikit-image (requirements-dev.txt); the photos ship inside the two packages, so nothing is fetched.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance

# Photographs only: scikit-image's synthetic pictures (colour wheel, logo, checkerboard, text) are left out.
SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "moon",
    "page",
    "brick",
    "grass",
    "gravel",
    "clock",
    "microaneurysms",
)


def _rgb(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        span = float(np.ptp(array)) or 1.0
        array = (255 * (array - array.min()) / span).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def sample_photos() -> dict[str, Image.Image]:
    """Every sample photo by name; the left view of scikit-image's stereo pair is `motorcycle`."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {name: _rgb(getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS}
    left, _, _ = skimage.data.stereo_motorcycle()
    photos["motorcycle"] = _rgb(left)
    for name, image in zip(("china", "flower"), load_sample_images().images, strict=True):
        photos[name] = _rgb(image)
    return photos


def stereo_pair() -> tuple[Image.Image, Image.Image]:
    """The same scene from two viewpoints a few centimetres apart: similar, not a duplicate."""
    import skimage.data

    left, right, _ = skimage.data.stereo_motorcycle()
    return _rgb(left), _rgb(right)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """The image re-encoded as JPEG."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def resized(image: Image.Image, factor: float) -> Image.Image:
    """The image scaled by `factor`."""
    size = (max(16, round(image.width * factor)), max(16, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


def cropped(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    """The image with fractions cut from each side."""
    w, h = image.size
    return image.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


def warmer(image: Image.Image) -> Image.Image:
    """A white-balance change: red up 10 %, blue down 15 %."""
    red, green, blue = image.split()
    return Image.merge(
        "RGB", (red.point(lambda v: min(255, int(v * 1.1))), green, blue.point(lambda v: int(v * 0.85)))
    )


# The edits that leave "the same photo", by name.
EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "JPEG q90": lambda i: jpeg(i, 90),
    "JPEG q30": lambda i: jpeg(i, 30),
    "resize 50 %": lambda i: resized(i, 0.5),
    "resize 25 % + JPEG q70": lambda i: jpeg(resized(i, 0.25), 70),
    "greyscale": lambda i: i.convert("L").convert("RGB"),
    "brightness +20 %": lambda i: ImageEnhance.Brightness(i).enhance(1.2),
    "contrast +30 %": lambda i: ImageEnhance.Contrast(i).enhance(1.3),
    "saturation -50 %": lambda i: ImageEnhance.Color(i).enhance(0.5),
    "warmer white balance": warmer,
    "crop 3 % per side": lambda i: cropped(i, 0.03, 0.03, 0.03, 0.03),
    "crop 7 % per side": lambda i: cropped(i, 0.07, 0.07, 0.07, 0.07),
    "crop 12 % per side": lambda i: cropped(i, 0.12, 0.12, 0.12, 0.12),
    "crop 15 % per side": lambda i: cropped(i, 0.15, 0.15, 0.15, 0.15),
    "crop 6 % wide, 10 % high": lambda i: cropped(i, 0.06, 0.1, 0.06, 0.1),
    "crop 10 % + resize 50 % + JPEG q75": lambda i: jpeg(resized(cropped(i, 0.1, 0.1, 0.1, 0.1), 0.5), 75),
}

# Crops off one side: to a hash the same picture as the camera moved a step aside, so they are measured
# but not counted as duplicates (a stereo pair would be, too).
OFF_CENTRE_CROPS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop 10 % off the right": lambda i: cropped(i, 0, 0, 0.1, 0),
    "crop 8 % off the top and left": lambda i: cropped(i, 0.08, 0.08, 0, 0),
}
