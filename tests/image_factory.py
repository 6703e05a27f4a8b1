"""Test images generated in code: every case ingest and uploads must handle, good and bad."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct RGB picture: gradient background, shapes and noise, deterministic per seed."""
    rng = random.Random(seed)
    width, height = size
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.array([rng.random(), rng.random(), rng.random()])[None, None, :]
    tilt = np.array([rng.random(), rng.random(), rng.random()])[None, None, :]
    array = (base * 0.6 + tilt * (x * 0.7 + y * 0.3)) * 255
    noise = np.random.default_rng(seed).normal(0, 12, (height, width, 3))
    image = Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(10, width // 2), y0 + rng.randrange(10, height // 2)
        color = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=color)
        else:
            draw.rectangle([x0, y0, x1, y1], fill=color)
    return image


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    """The image as JPEG bytes."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG bytes."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def exif_rotated_jpeg(seed: int) -> bytes:
    """A 200x100 landscape stored with EXIF orientation 6 (shown rotated: 100x200)."""
    image = photo(seed, (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(image, exif=exif.tobytes())


def cmyk_jpeg(seed: int) -> bytes:
    """A CMYK JPEG."""
    return jpeg_bytes(photo(seed).convert("CMYK"))


def sixteen_bit_png(level: int = 40000) -> bytes:
    """A 16-bit grayscale PNG of a mid-grey (must not come out white)."""
    array = np.full((64, 64), level, dtype=np.uint16)
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def palette_png(seed: int) -> bytes:
    """A palette (P mode) PNG."""
    return png_bytes(photo(seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=32))


def transparent_png() -> bytes:
    """A fully transparent RGBA PNG (must come out white, not black)."""
    return png_bytes(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))


def animated_gif(seed: int) -> bytes:
    """A three-frame animated GIF."""
    frames = [photo(seed + i, (96, 96)).convert("P") for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def truncated_jpeg(seed: int) -> bytes:
    """A JPEG cut in the middle."""
    data = jpeg_bytes(photo(seed, (400, 300)))
    return data[: len(data) // 2]


def bomb_png(side: int = 12000) -> bytes:
    """A small file that declares side x side pixels (a decompression bomb)."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG", optimize=True)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    """Write bytes to a path, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def library_with_every_case(root: Path, good: int = 6) -> dict[str, int]:
    """Fill `root` with good photos and every bad case; return the expected counts."""
    for i in range(good):
        write(root / "good" / f"photo_{i}.jpg", jpeg_bytes(photo(i)))
    write(root / "odd" / "rotated.jpg", exif_rotated_jpeg(100))
    write(root / "odd" / "cmyk.jpg", cmyk_jpeg(101))
    write(root / "odd" / "sixteen.png", sixteen_bit_png())
    write(root / "odd" / "palette.png", palette_png(102))
    write(root / "odd" / "transparent.png", transparent_png())
    write(root / "odd" / "animated.gif", animated_gif(103))
    write(root / "bad" / "empty.jpg", b"")
    write(root / "bad" / "truncated.jpg", truncated_jpeg(104))
    write(root / "bad" / "text.jpg", b"this is not an image at all\n" * 10)
    write(root / "bad" / "bomb.png", bomb_png())
    write(root / "bad" / "photo.heic", b"\x00\x00\x00\x18ftypheic")
    write(root / "bad" / "notes.txt", b"ignored: not an image name")
    write(root / "dupes" / "copy_of_0.jpg", (root / "good" / "photo_0.jpg").read_bytes())
    return {"indexed": good + 6, "skipped": 5, "duplicates": 1}
