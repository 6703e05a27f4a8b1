"""The CLIP model (core/model/clip.py) on the tiny CLIP: its two towers, batched unit vectors, truncation,
bf16 against fp32, and how `auto` device and precision are resolved."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import core.model.device as device_module
from core.model import (
    ClipModel,
    ImageTower,
    TextTower,
    cpu_supports_bf16,
    model_thread,
    resolve_device,
    resolve_precision,
)
from tests.image_factory import photo

LONG_TEXTS = [
    "a very long description of the Eiffel Tower at night with many lights " * 20,
    "Длинное описание Московского Кремля на закате, красные стены и башни " * 20,
    "🏔️🌋🗼🏯🎈🌊" * 60,
]


@pytest.fixture(scope="module")
def bf16_encoder(tiny_model_dir: Path) -> ClipModel:
    """The same tiny CLIP with its weights cast to bfloat16."""
    return ClipModel(str(tiny_model_dir), device="cpu", precision="bf16")


def assert_unit_rows(vectors: np.ndarray, rows: int, dim: int) -> None:
    """float32 (rows, dim) with unit-length rows."""
    assert vectors.shape == (rows, dim)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_identity_of_the_tiny_model(encoder: ClipModel, tiny_model_dir: Path) -> None:
    assert encoder.device == "cpu"
    assert encoder.precision == "fp32"
    assert encoder.dim == 16
    assert encoder.identity.as_meta() == {"model": str(tiny_model_dir), "dim": 16, "image_size": 32}
    assert 1.0 < encoder.logit_scale <= 100.0


def test_the_two_towers_are_separate_objects_behind_their_interfaces(encoder: ClipModel) -> None:
    image, text = encoder.image, encoder.text
    assert image is not text
    assert isinstance(image, ImageTower) and not isinstance(image, TextTower)
    assert isinstance(text, TextTower) and not isinstance(text, ImageTower)
    assert image.identity is encoder.identity
    assert (text.name, text.model_name, text.dim, text.max_tokens) == ("clip", encoder.model_name, 16, 77)


def test_the_towers_answer_as_the_one_shared_model_does(encoder: ClipModel) -> None:
    """Each tower is only a door to the shared model: the same rows as its forward pass on the model
    thread, at the batch sizes the single encoder used (8 images, 32 texts)."""
    images = [photo(i) for i in range(3)]
    texts = ["Eiffel Tower at night", "hot air balloons over Cappadocia"]
    direct_images = model_thread().call(lambda: encoder._forward(images, 8))
    direct_texts = model_thread().call(lambda: encoder._forward(texts, 32))
    np.testing.assert_allclose(encoder.image.encode_images(images), direct_images, atol=1e-6)
    np.testing.assert_allclose(encoder.text.encode_texts(texts), direct_texts, atol=1e-6)
    assert encoder.image.encode_images(images).shape == (3, encoder.dim)


def test_images_batched_are_unit_vectors_and_match_one_by_one(encoder: ClipModel) -> None:
    images = [photo(i, (96, 64)) for i in range(5)]
    batched = encoder.image.encode_images(images, batch_size=2)
    assert_unit_rows(batched, 5, encoder.dim)
    single = np.concatenate([encoder.image.encode_images([image], batch_size=1) for image in images])
    np.testing.assert_allclose((batched * single).sum(axis=1), 1.0, atol=1e-4)
    # Different pictures give different vectors.
    similarity = batched @ batched.T
    assert similarity[np.triu_indices(5, 1)].max() < 0.99999


def test_texts_are_unit_vectors(encoder: ClipModel) -> None:
    texts = ["Eiffel Tower at night", "hot air balloons over Cappadocia", "Московский Кремль", ""]
    assert_unit_rows(encoder.text.encode_texts(texts), len(texts), encoder.dim)


def test_text_over_77_tokens_is_truncated_not_an_error(encoder: ClipModel) -> None:
    tokenizer = encoder.torch_module()[0].processor.tokenizer
    for text in LONG_TEXTS:
        assert len(tokenizer(text, truncation=False)["input_ids"]) > 77
    assert_unit_rows(encoder.text.encode_texts(LONG_TEXTS), len(LONG_TEXTS), encoder.dim)


def test_truncation_keeps_the_first_77_tokens(encoder: ClipModel) -> None:
    # The tiny tokenizer has no merges: "word" is 4 tokens. 19 words (76 tokens + start and end) and
    # 200 words are both cut to the same first 75 tokens; 18 words fit whole and differ.
    vectors = encoder.text.encode_texts(["word " * 200, "word " * 19, "word " * 18])
    assert float(vectors[0] @ vectors[1]) > 0.99999
    assert float(vectors[0] @ vectors[2]) < 0.9999


def test_empty_lists_give_empty_arrays(encoder: ClipModel) -> None:
    for vectors in (encoder.image.encode_images([]), encoder.text.encode_texts([])):
        assert vectors.shape == (0, encoder.dim)
        assert vectors.dtype == np.float32


def test_warm_up_runs(encoder: ClipModel) -> None:
    encoder.warm_up()


def test_concurrent_callers_get_the_same_answers(encoder: ClipModel) -> None:
    expected = encoder.text.encode_texts(["pyramids of Giza"])
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(encoder.text.encode_texts(["pyramids of Giza"]))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_bf16_weights_are_bf16_only(bf16_encoder: ClipModel) -> None:
    assert bf16_encoder.precision == "bf16"
    floating = {p.dtype for p in bf16_encoder.torch_module().parameters() if p.is_floating_point()}
    assert floating == {torch.bfloat16}, "the bf16 model must not keep an fp32 copy of its weights"


def test_bf16_and_fp32_embeddings_agree(encoder: ClipModel, bf16_encoder: ClipModel) -> None:
    images = [photo(i, (96, 64)) for i in range(4)]
    a, b = (
        encoder.image.encode_images(images, batch_size=4),
        bf16_encoder.image.encode_images(images, batch_size=4),
    )
    assert_unit_rows(b, 4, encoder.dim)
    assert (a * b).sum(axis=1).min() > 0.999
    texts = ["Eiffel Tower at night", "Пирамиды Гизы", *LONG_TEXTS]
    a, b = encoder.text.encode_texts(texts), bf16_encoder.text.encode_texts(texts)
    assert_unit_rows(b, len(texts), encoder.dim)
    assert (a * b).sum(axis=1).min() > 0.999
    assert bf16_encoder.identity == encoder.identity


# -- device and precision resolution ------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_explicit_device_is_kept(device: str) -> None:
    assert resolve_device(device) == device


def test_auto_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "int8"])
def test_explicit_precision_is_kept(precision: str) -> None:
    for device in ("cpu", "cuda", "mps"):
        assert resolve_precision(precision, device) == precision


@pytest.mark.parametrize(
    ("device", "has_bf16", "expected"),
    [
        ("cuda", False, "fp16"),
        ("cuda", True, "fp16"),
        ("cpu", True, "bf16"),
        ("cpu", False, "fp32"),
        ("mps", True, "fp32"),
    ],
)
def test_auto_precision(monkeypatch: pytest.MonkeyPatch, device: str, has_bf16: bool, expected: str) -> None:
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: has_bf16)
    assert resolve_precision("auto", device) == expected


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("flags : fpu avx512f avx512_bf16", True),
        ("flags : fpu amx_bf16 amx_tile", True),
        ("flags : fpu avx2", False),
    ],
)
def test_cpu_supports_bf16_reads_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: str, expected: bool
) -> None:
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: cpuinfo)
    assert cpu_supports_bf16() is expected


def test_cpu_supports_bf16_without_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(self: Path, *args: object, **kwargs: object) -> str:
        raise OSError("no /proc here")

    monkeypatch.setattr(Path, "read_text", unreadable)
    assert cpu_supports_bf16() is False


def test_auto_on_this_machine_loads(tiny_model_dir: Path) -> None:
    auto = ClipModel(str(tiny_model_dir), device="auto", precision="auto")
    assert auto.device == resolve_device("auto")
    assert auto.precision == resolve_precision("auto", auto.device)
    assert_unit_rows(auto.text.encode_texts(["a photo"]), 1, auto.dim)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_int8_is_close_to_fp32(encoder: ClipModel, tiny_model_dir: Path) -> None:
    quantized = ClipModel(str(tiny_model_dir), device="cpu", precision="int8")
    texts = ["Eiffel Tower at night", "Pyramids of Giza"]
    got = quantized.text.encode_texts(texts)
    assert_unit_rows(got, 2, encoder.dim)
    assert (got * encoder.text.encode_texts(texts)).sum(axis=1).min() > 0.99
