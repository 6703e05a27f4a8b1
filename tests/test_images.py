"""Safe decoding (core/images.py): every odd mode comes out as upright 8-bit RGB, every bad input as
UnsupportedImage with a one-line reason, and nothing else ever escapes."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import core.images as images
from core.images import UnsupportedImage, decode_image, is_image_name, shrink, thumbnail_jpeg
from tests.image_factory import (
    animated_gif,
    bomb_png,
    cmyk_jpeg,
    exif_rotated_jpeg,
    jpeg_bytes,
    palette_png,
    photo,
    png_bytes,
    sixteen_bit_png,
    transparent_png,
    truncated_jpeg,
)

LIMIT = 50_000_000


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The image saved in `fmt`."""
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def exif_orientation(value: int) -> bytes:
    """An EXIF block holding only the orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def assert_one_line_reason(err: UnsupportedImage) -> None:
    """A reason a person can read in a log or an API error: one short line."""
    assert err.reason == str(err)
    assert err.reason.strip()
    assert "\n" not in err.reason
    assert len(err.reason) <= 200


# -- good inputs --------------------------------------------------------------------------------------


def halves(mode: str, first: object, second: object, size: tuple[int, int] = (200, 100)) -> Image.Image:
    """A landscape image whose left half is `first` and right half `second`."""
    image = Image.new(mode, size, second)  # type: ignore[arg-type]
    image.paste(first, (0, 0, size[0] // 2, size[1]))  # type: ignore[arg-type]
    return image


RED, BLUE = (255, 0, 0), (0, 0, 255)

ORIENTED = {
    "jpeg-rgb": lambda exif: encode(halves("RGB", RED, BLUE), "JPEG", quality=95, exif=exif),
    "jpeg-cmyk": lambda exif: encode(halves("RGB", RED, BLUE).convert("CMYK"), "JPEG", quality=95, exif=exif),
    "png-rgba": lambda exif: encode(halves("RGBA", (*RED, 255), (*BLUE, 255)), "PNG", exif=exif),
    "png-palette": lambda exif: encode(halves("RGB", RED, BLUE).convert("P"), "PNG", exif=exif),
    "png-16bit": lambda exif: encode(
        Image.fromarray(
            np.hstack([np.full((100, 100), 60000, np.uint16), np.full((100, 100), 3000, np.uint16)])
        ),
        "PNG",
        exif=exif,
    ),
}


@pytest.mark.parametrize("kind", sorted(ORIENTED))
def test_exif_orientation_6_swaps_size_and_rotates_pixels(kind: str) -> None:
    # Stored 200x100, left half "first"; orientation 6 = rotate 90 degrees clockwise to display, so the
    # displayed image is 100x200 with "first" on top.
    decoded = decode_image(ORIENTED[kind](exif_orientation(6)), LIMIT)
    assert (decoded.width, decoded.height) == (100, 200)
    assert decoded.image.size == (100, 200)
    assert decoded.image.mode == "RGB"
    top = np.asarray(decoded.image)[:90].astype(float).mean(axis=(0, 1))
    bottom = np.asarray(decoded.image)[110:].astype(float).mean(axis=(0, 1))
    if kind == "png-16bit":
        assert top.mean() > 200 and bottom.mean() < 30, (top, bottom)
    else:
        assert top[0] > 200 and top[2] < 60, top
        assert bottom[2] > 200 and bottom[0] < 60, bottom


@pytest.mark.parametrize(
    ("orientation", "size", "first_at"), [(3, (200, 100), "right"), (8, (100, 200), "bottom")]
)
def test_other_exif_orientations(orientation: int, size: tuple[int, int], first_at: str) -> None:
    data = encode(halves("RGB", RED, BLUE), "PNG", exif=exif_orientation(orientation))
    decoded = decode_image(data, LIMIT)
    assert (decoded.width, decoded.height) == size == decoded.image.size
    pixels = np.asarray(decoded.image).astype(float)
    if first_at == "right":  # 180 degrees: the red left half ends up on the right
        assert pixels[:, -20:, 0].mean() > 200 and pixels[:, :20, 2].mean() > 200
    else:  # 90 counter-clockwise: the left half ends up at the bottom
        assert pixels[-20:, :, 0].mean() > 200 and pixels[:20, :, 2].mean() > 200


def test_factory_exif_rotated_jpeg() -> None:
    decoded = decode_image(exif_rotated_jpeg(100), LIMIT)
    assert (decoded.width, decoded.height) == (100, 200) == decoded.image.size
    assert decoded.format == "JPEG"


@pytest.mark.parametrize(("level", "expected"), [(40000, 156), (32768, 128), (65535, 255), (0, 0)])
def test_sixteen_bit_png_is_scaled_not_clipped(level: int, expected: int) -> None:
    data = sixteen_bit_png(level)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode_image(data, LIMIT)
    assert decoded.image.mode == "RGB"
    pixels = np.asarray(decoded.image)
    assert abs(int(pixels.mean()) - expected) <= 1, pixels.mean()
    assert pixels.std() < 1


def test_float_tiff_is_scaled() -> None:
    data = encode(Image.fromarray(np.full((32, 32), 0.5, np.float32), "F"), "TIFF")
    pixels = np.asarray(decode_image(data, LIMIT).image)
    assert abs(pixels.mean() - 128) <= 1


def test_transparent_png_is_composited_on_white() -> None:
    decoded = decode_image(transparent_png(), LIMIT)
    assert decoded.image.mode == "RGB"
    assert np.asarray(decoded.image).min() == 255


def test_half_transparent_red_is_pink_on_white() -> None:
    decoded = decode_image(png_bytes(Image.new("RGBA", (16, 16), (255, 0, 0, 128))), LIMIT)
    r, g, b = np.asarray(decoded.image).reshape(-1, 3).mean(axis=0)
    assert r == pytest.approx(255, abs=1)
    assert g == pytest.approx(127, abs=2) and b == pytest.approx(127, abs=2)


def test_grey_alpha_and_palette_transparency_become_white() -> None:
    la = decode_image(png_bytes(Image.new("LA", (8, 8), (0, 0))), LIMIT)
    assert np.asarray(la.image).min() == 255
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    decoded = decode_image(png_bytes(palette), LIMIT)
    assert np.asarray(decoded.image).min() == 255


def test_cmyk_jpeg_becomes_rgb_with_its_colours() -> None:
    decoded = decode_image(cmyk_jpeg(101), LIMIT)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (320, 240)
    original = np.asarray(photo(101)).astype(float).mean(axis=(0, 1))
    got = np.asarray(decoded.image).astype(float).mean(axis=(0, 1))
    assert np.abs(original - got).max() < 20, (original, got)


def test_palette_png_becomes_rgb() -> None:
    decoded = decode_image(palette_png(102), LIMIT)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (320, 240)
    diff = np.abs(np.asarray(decoded.image).astype(float) - np.asarray(photo(102)).astype(float)).mean()
    assert diff < 20


def test_animated_gif_gives_its_first_frame() -> None:
    decoded = decode_image(animated_gif(103), LIMIT)
    assert decoded.format == "GIF"
    assert decoded.image.size == (96, 96)
    got = np.asarray(decoded.image).astype(float)
    distances = [
        np.abs(got - np.asarray(photo(103 + i, (96, 96)).convert("P").convert("RGB")).astype(float)).mean()
        for i in range(3)
    ]
    assert distances[0] == min(distances) and distances[0] < 5, distances


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "PNG"])
def test_other_accepted_formats(fmt: str) -> None:
    decoded = decode_image(encode(photo(7, (120, 90)), fmt), LIMIT)
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == (120, 90)
    assert decoded.image.mode == "RGB"


def test_path_source_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(photo(1)))
    assert decode_image(path, LIMIT).image.size == (320, 240)


def test_big_jpeg_is_decoded_in_draft_mode_and_keeps_original_size(monkeypatch: pytest.MonkeyPatch) -> None:
    big = Image.new("RGB", (4000, 3000), (90, 140, 200))
    big.paste((200, 60, 30), (500, 500, 2500, 2000))
    data = jpeg_bytes(big)
    seen: list[tuple[int, int]] = []
    real_to_rgb = images._to_rgb

    def spy(image: Image.Image) -> Image.Image:
        seen.append(image.size)  # the size libjpeg actually decoded to
        return real_to_rgb(image)

    monkeypatch.setattr(images, "_to_rgb", spy)
    decoded = decode_image(data, LIMIT, min_side=448)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert min(decoded.image.size) == 448
    assert decoded.image.size == (597, 448)
    # Draft mode decoded at 1/4 scale (1000x750): never the full 12 megapixels.
    assert seen and seen[0][0] * seen[0][1] <= 1000 * 750, seen


def test_small_images_are_never_upscaled() -> None:
    decoded = decode_image(jpeg_bytes(photo(2, (100, 80))), LIMIT, min_side=448)
    assert decoded.image.size == (100, 80)
    assert shrink(Image.new("RGB", (10, 5)), 448).size == (10, 5)
    assert shrink(Image.new("RGB", (1000, 500)), 100).size == (200, 100)


def test_thumbnail_jpeg_is_bounded() -> None:
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(photo(3, (800, 400)), 128)))
    assert thumb.format == "JPEG"
    assert thumb.size == (128, 64)


def test_image_names() -> None:
    assert is_image_name(Path("a/B.JPG"))
    assert is_image_name(Path("x.webp"))
    assert not is_image_name(Path("x.heic"))
    assert not is_image_name(Path("notes.txt"))


# -- bad inputs ---------------------------------------------------------------------------------------


def tiff_with_huge_strip_offset() -> bytes:
    """A 2x2 TIFF whose strip offset (a LONG8) is beyond any file: Pillow raises OverflowError on it."""
    entries = [
        (256, 3, 1, 2),
        (257, 3, 1, 2),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 16, 1, None),
        (277, 3, 1, 1),
        (278, 3, 1, 2),
        (279, 4, 1, 4),
    ]
    long8_at = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if value is None:
            out += struct.pack("<HHII", tag, kind, count, long8_at)
        elif kind == 3:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0) + struct.pack("<Q", 0xF000_0000_0000_0000) + b"\x00" * 4
    return bytes(out)


BAD = {
    "empty": (b"", "empty"),
    "truncated": (truncated_jpeg(104), "truncated"),
    "text-named-jpg": (b"this is not an image at all\n" * 10, "not an image"),
    "html": (b"<!doctype html><html><body>hello</body></html>", "not an image"),
    "bomb-declared": (bomb_png(12000), "too many pixels"),
    "ico": (encode(photo(1, (32, 32)), "ICO"), "unsupported format"),
    "tga": (encode(photo(1, (32, 32)), "TGA"), "unsupported format"),
    "pcx": (encode(photo(1, (32, 32)), "PCX"), "unsupported format"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
    "jpeg-header-only": (jpeg_bytes(photo(1))[:200], "truncated"),
    "png-signature-only": (b"\x89PNG\r\n\x1a\n", None),
    "tiff-huge-offset": (tiff_with_huge_strip_offset(), None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_give_unsupported_image(case: str) -> None:
    data, fragment = BAD[case]
    with pytest.raises(UnsupportedImage) as caught:
        decode_image(data, LIMIT)
    assert_one_line_reason(caught.value)
    if fragment:
        assert fragment in caught.value.reason


def test_empty_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UnsupportedImage, match="empty"):
        decode_image(path, LIMIT)


def test_bomb_reason_names_the_size() -> None:
    with pytest.raises(UnsupportedImage) as caught:
        decode_image(BAD["bomb-declared"][0], LIMIT)
    assert "12000x12000" in caught.value.reason
    assert "50,000,000" in caught.value.reason


def test_pixel_limit_is_configurable() -> None:
    data = jpeg_bytes(photo(1, (320, 240)))  # 76,800 pixels
    assert decode_image(data, max_pixels=76_800).width == 320
    with pytest.raises(UnsupportedImage, match="too many pixels") as caught:
        decode_image(data, max_pixels=76_799)
    assert_one_line_reason(caught.value)


# -- nothing but UnsupportedImage escapes -------------------------------------------------------------


def seeds() -> list[bytes]:
    """Small valid files of every accepted format, to be mutated."""
    small = photo(11, (40, 30))
    return [
        jpeg_bytes(small),
        jpeg_bytes(small, progressive=True),
        exif_rotated_jpeg(12),
        png_bytes(small),
        png_bytes(small.convert("RGBA")),
        sixteen_bit_png(),
        palette_png(13),
        animated_gif(14),
        encode(small, "TIFF"),
        encode(small.convert("RGBA"), "TIFF", compression="tiff_deflate"),
        encode(small, "WEBP"),
        encode(small, "BMP"),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip, delete and insert a few bytes; sometimes cut the end."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        roll = rng.random()
        if roll < 0.6:
            out[at] = rng.randrange(256)
        elif roll < 0.8:
            del out[at : at + rng.randint(1, 16)]
        else:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    if rng.random() < 0.1:
        out = out[: rng.randrange(len(out) + 1)]
    return bytes(out)


def test_mutated_real_files_only_raise_unsupported_image() -> None:
    rng = random.Random(20240607)
    originals = seeds()
    decoded = refused = 0
    for _ in range(3000):
        data = mutate(rng.choice(originals), rng)
        try:
            result = decode_image(data, 1_000_000)
        except UnsupportedImage as err:
            assert_one_line_reason(err)
            refused += 1
        else:
            assert result.image.mode == "RGB"
            decoded += 1
    assert decoded > 0 and refused > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_unsupported_image(data: bytes) -> None:
    try:
        decode_image(data, 1_000_000)
    except UnsupportedImage as err:
        assert_one_line_reason(err)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"RIFF", b"BM"]),
    st.binary(),
)
def test_format_magic_followed_by_garbage(magic: bytes, rest: bytes) -> None:
    try:
        decode_image(magic + rest, 1_000_000)
    except UnsupportedImage as err:
        assert_one_line_reason(err)
