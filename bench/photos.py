"""Realistic generated photos: multi-megapixel JPEGs whose decode cost and file size are those of photos.

Smooth low-frequency "scenery" (random fields upscaled), shapes with soft edges, and fine sensor-like noise,
saved at JPEG quality 92: a 3000x2000 file comes out at about 1.5-3 MB, like a camera's. Cached by size
and seed under the bench cache folder, so repeated runs do not pay for generating them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """One deterministic photo-like RGB image of `size`."""
    rng = np.random.default_rng(seed)
    width, height = size
    small = (max(8, width // 16), max(8, height // 16))
    # Sky-to-ground gradient plus a cloudy random field at 1/16 scale.
    y = np.linspace(0, 1, small[1])[:, None, None]
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(20, 200, 3)
    base = top * (1 - y) + bottom * y + np.zeros((small[1], small[0], 3))
    field = rng.normal(0, 28, (small[1] // 4 + 1, small[0] // 4 + 1, 3))
    clouds = np.asarray(
        Image.fromarray(np.clip(field + 128, 0, 255).astype(np.uint8)).resize(
            small, Image.Resampling.BICUBIC
        ),
        dtype=np.float64,
    )
    image = Image.fromarray(np.clip(base + clouds - 128, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 20))):
        x0, y0 = int(rng.integers(0, small[0])), int(rng.integers(small[1] // 3, small[1]))
        w, h = int(rng.integers(2, small[0] // 3)), int(rng.integers(2, small[1] // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=color)
        elif shape == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=color)
        else:
            draw.polygon([(x0, y0 + h), (x0 + w // 2, y0 - h), (x0 + w, y0 + h)], fill=color)
    image = image.filter(ImageFilter.GaussianBlur(0.6)).resize(size, Image.Resampling.BICUBIC)
    # Texture at full resolution: noise whose amplitude varies, like foliage, rock and sky.
    texture = rng.normal(0, 1, (height // 2, width // 2, 1)).astype(np.float32)
    texture = np.repeat(np.repeat(texture, 2, axis=0), 2, axis=1)[:height, :width]
    strength = np.asarray(
        Image.fromarray(rng.integers(0, 255, (8, 12), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC),
        dtype=np.float32,
    )[:, :, None]
    fine = rng.normal(0, 2.0, (height, width, 1)).astype(np.float32)
    pixels = np.asarray(image, dtype=np.float32) + texture * (2 + strength / 255 * 14) + fine
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def photo_jpeg(seed: int, size: tuple[int, int], quality: int = 92) -> bytes:
    """The photo as JPEG bytes."""
    out = io.BytesIO()
    photo(seed, size).save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo_files(folder: Path, count: int, size: tuple[int, int], first_seed: int = 1000) -> list[Path]:
    """`count` JPEG files of `size` in `folder` (generated once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo-{size[0]}x{size[1]}-{first_seed + i}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(photo_jpeg(first_seed + i, size))
            tmp.replace(path)
        paths.append(path)
    return paths
