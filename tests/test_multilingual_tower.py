"""The multilingual text tower (core/model/multilingual.py) on a tiny M-CLIP in the real 2022 layout:
the published formula, batching, truncation, precision, packing, the hub path and every refusal."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import huggingface_hub
import numpy as np
import pytest
import torch

from core.model.multilingual import (
    CHECKPOINT_FILES,
    MCLIP_MODEL,
    MCLIP_REVISION,
    MultilingualLoadError,
    MultilingualTextTower,
    TowerMismatch,
    attention_heads,
    tower_precision,
)
from core.model.rewrites.packed_linear import PackedLinear, packing_works
from devtools.tiny_mclip import TinyMClip, build_tiny_mclip, unigram_tokenizer

TEXTS = [
    "зебра в траве",
    "a photo of the Eiffel Tower at night",
    "Московский Кремль ночью!",
    "Hund",
    "",
    "🏔️ горы — «озеро»",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyMClip:
    """The stand-in checkpoint and the modules it was saved from."""
    return build_tiny_mclip(tmp_path_factory.mktemp("tiny-mclip"))


@pytest.fixture(scope="module")
def tower(tiny: TinyMClip) -> MultilingualTextTower:
    """The stand-in loaded by the product's loader, fp32 on the CPU."""
    return MultilingualTextTower(str(tiny.folder), device="cpu", precision="fp32")


@pytest.fixture
def copy_of(tiny: TinyMClip, tmp_path: Path) -> Callable[..., Path]:
    """A copy of the stand-in's folder, its state dict changed by `edit` (for the refusals)."""

    def make(edit: Callable[[dict[str, torch.Tensor]], None] | None = None) -> Path:
        folder = tmp_path / "broken"
        shutil.copytree(tiny.folder, folder)
        if edit is not None:
            state = torch.load(folder / "pytorch_model.bin", weights_only=True)
            edit(state)
            torch.save(state, folder / "pytorch_model.bin")
        return folder

    return make


def reference(tiny: TinyMClip, texts: list[str], max_length: int = 77) -> np.ndarray:
    """The published M-CLIP formula on the modules the stand-in was saved from: masked mean of the
    last hidden state (<s> and </s> included), the linear head, then L2 normalisation."""
    batch = tiny.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = tiny.transformer(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
        vectors = tiny.head(pooled)
    return (vectors / vectors.norm(dim=1, keepdim=True)).numpy()


def assert_unit_rows(vectors: np.ndarray, rows: int, dim: int) -> None:
    """float32 (rows, dim) with unit-length rows."""
    assert vectors.shape == (rows, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_stand_in_has_the_2022_layout(tiny: TinyMClip) -> None:
    config = json.loads((tiny.folder / "config.json").read_text())
    assert config["model_type"] == "M-CLIP" and config["modelBase"] == "xlm-roberta-large"
    assert "transformerDimensions" not in config and "hidden_size" not in config
    state = torch.load(tiny.folder / "pytorch_model.bin", weights_only=True)
    assert {"transformer.pooler.dense.weight", "transformer.embeddings.position_ids"} <= set(state)
    assert {"LinearTransformation.weight", "LinearTransformation.bias"} <= set(state)
    assert all(k.startswith(("transformer.", "LinearTransformation.")) for k in state)
    assert not (tiny.folder / "sentencepiece.bpe.model").exists()


def test_tower_identity(tower: MultilingualTextTower, tiny: TinyMClip) -> None:
    assert tower.name == "multilingual"
    assert tower.model_name == str(tiny.folder)
    assert (tower.dim, tower.max_tokens, tower.device, tower.precision) == (16, 77, "cpu", "fp32")
    assert tower.revision is None


def test_vectors_equal_the_published_formula(tower: MultilingualTextTower, tiny: TinyMClip) -> None:
    vectors = tower.encode_texts(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), 16)
    np.testing.assert_allclose(vectors, reference(tiny, TEXTS), atol=1e-6)
    assert (vectors @ vectors.T)[np.triu_indices(len(TEXTS), 1)].max() < 0.9999


def test_batch_and_single_agree(tower: MultilingualTextTower) -> None:
    batched = tower.encode_texts(TEXTS)
    single = np.concatenate([tower.encode_texts([text]) for text in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    # More texts than one forward pass takes (32), in an order the tower sorts by length.
    many = [TEXTS[i % len(TEXTS)] + " " + "в " * (i % 7) for i in range(70)]
    np.testing.assert_allclose(
        tower.encode_texts(many)[[0, 33, 69]], tower.encode_texts([many[i] for i in (0, 33, 69)]), atol=1e-6
    )


def test_concurrent_callers_get_their_own_rows(tower: MultilingualTextTower) -> None:
    alone = {text: tower.encode_texts([text])[0] for text in TEXTS}
    answers: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        answers[i] = tower.encode_texts([TEXTS[i % len(TEXTS)], TEXTS[(i + 1) % len(TEXTS)]])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, rows in answers.items():
        np.testing.assert_allclose(rows[0], alone[TEXTS[i % len(TEXTS)]], atol=1e-6)
        np.testing.assert_allclose(rows[1], alone[TEXTS[(i + 1) % len(TEXTS)]], atol=1e-6)
    assert len(answers) == 12


def test_long_text_is_cut_at_77_tokens_and_reported(tower: MultilingualTextTower, tiny: TinyMClip) -> None:
    # "▁зебра" is one token: 75 of them and <s>, </s> fill 77.
    texts = ["зебра " * 400, "зебра " * 75, "зебра " * 74]
    assert tower.truncated(texts) == [True, False, False]
    vectors = tower.encode_texts(texts)
    assert_unit_rows(vectors, 3, 16)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert float(vectors[0] @ vectors[2]) < 0.99999
    np.testing.assert_allclose(vectors, reference(tiny, texts), atol=1e-6)


def test_the_cut_never_passes_the_position_limit(tiny: TinyMClip) -> None:
    # 514 position embeddings, numbered from pad_token_id + 1: 512 tokens at most.
    tower = MultilingualTextTower(str(tiny.folder), device="cpu", precision="fp32", max_tokens=4096)
    assert tower.max_tokens == 512
    texts = ["зебра " * 2000]
    assert tower.truncated(texts) == [True]
    np.testing.assert_allclose(tower.encode_texts(texts), reference(tiny, texts, 512), atol=1e-6)


def test_no_texts_give_an_empty_array(tower: MultilingualTextTower) -> None:
    vectors = tower.encode_texts([])
    assert vectors.shape == (0, 16) and vectors.dtype == np.float32
    assert tower.truncated([]) == []


def test_bf16_is_close_to_fp32_and_keeps_no_fp32_copy(tower: MultilingualTextTower, tiny: TinyMClip) -> None:
    half = MultilingualTextTower(str(tiny.folder), device="cpu", precision="bf16")
    assert half.precision == "bf16"
    assert {p.dtype for p in half.torch_module().parameters()} == {torch.bfloat16}
    vectors = half.encode_texts(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), 16)
    assert float((vectors * tower.encode_texts(TEXTS)).sum(axis=1).min()) > 0.999


def test_int8_is_close_to_fp32_and_a_text_never_depends_on_its_batch(
    tower: MultilingualTextTower, tiny: TinyMClip
) -> None:
    """int8 (auto on a CPU without bf16): quantized Linear layers, a bf16 word embedding, fp32 after the
    embedding sum; each text is encoded alone, so batching with other callers never changes a vector."""
    quantized = MultilingualTextTower(str(tiny.folder), device="cpu", precision="int8")
    module = quantized.torch_module()
    assert not any(type(m) is torch.nn.Linear for m in module.modules()), "every Linear is quantized"
    assert any(
        "Quantized" in type(m).__module__ or "quantized" in type(m).__module__ for m in module.modules()
    )
    assert module.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    vectors = quantized.encode_texts(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), 16)
    assert float((vectors * tower.encode_texts(TEXTS)).sum(axis=1).min()) > 0.99
    single = np.concatenate([quantized.encode_texts([text]) for text in TEXTS])
    np.testing.assert_array_equal(vectors, single)


@pytest.mark.parametrize(
    ("requested", "bf16_cpu", "expected"),
    [("auto", False, "int8"), ("auto", True, "bf16"), ("fp32", False, "fp32"), ("int8", True, "int8")],
)
def test_auto_is_int8_on_a_cpu_without_bf16(
    tiny: TinyMClip, monkeypatch: pytest.MonkeyPatch, requested: str, bf16_cpu: bool, expected: str
) -> None:
    import core.model.device

    monkeypatch.setattr(core.model.device, "cpu_supports_bf16", lambda: bf16_cpu)
    assert tower_precision(requested, "cpu") == expected
    assert tower_precision("auto", "cuda") == "fp16"


def test_the_embedding_is_one_lookup_table_and_nothing_is_added(
    tower: MultilingualTextTower, tiny: TinyMClip
) -> None:
    module = tower.torch_module()
    words = module.embeddings.word_embeddings
    assert type(words) is torch.nn.Embedding and tuple(words.weight.shape) == (len(tiny.tokenizer), 128)
    # Every parameter is one of the checkpoint's encoder tensors (no pooler, no output layer, no copy).
    state = torch.load(tiny.folder / "pytorch_model.bin", weights_only=True)
    used = sum(
        t.numel()
        for k, t in state.items()
        if k.startswith("transformer.")
        and not k.startswith(("transformer.pooler.", "transformer.embeddings.position_ids"))
    )
    assert sum(p.numel() for p in module.parameters()) == used


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_packed_linears_keep_the_answers(tiny: TinyMClip, precision: str) -> None:
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    packed = MultilingualTextTower(str(tiny.folder), device="cpu", precision=precision)
    plain = MultilingualTextTower(str(tiny.folder), device="cpu", precision=precision, pack=False)
    count = sum(type(m) is PackedLinear for m in packed.torch_module().modules())
    if not packing_works(dtype):
        assert count == 0  # plain Linear layers kept
        pytest.skip(f"this CPU cannot pack {dtype} weights")
    # Six Linear layers per layer: q, k, v, attention output, intermediate, output.
    assert count == 12
    assert not any(type(m) is PackedLinear for m in plain.torch_module().modules())
    tolerance = 1e-6 if precision == "fp32" else 1e-2
    np.testing.assert_allclose(packed.encode_texts(TEXTS), plain.encode_texts(TEXTS), atol=tolerance)


def test_safetensors_weights_load_the_same(
    tower: MultilingualTextTower, copy_of: Callable[..., Path]
) -> None:
    from safetensors.torch import save_file

    folder = copy_of()
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    (folder / "pytorch_model.bin").unlink()
    other = MultilingualTextTower(str(folder), device="cpu", precision="fp32")
    np.testing.assert_allclose(other.encode_texts(TEXTS), tower.encode_texts(TEXTS), atol=1e-6)


def test_heads_are_64_units_wide_as_in_xlm_roberta_large() -> None:
    assert attention_heads(1024) == 16
    assert attention_heads(768) == 12


def test_the_pinned_revision_is_fetched_with_only_the_needed_files(
    tiny: TinyMClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub cache of a machine where the model was downloaded beforehand (offline here).
    repo_dir = tmp_path / "hub" / ("models--" + MCLIP_MODEL.replace("/", "--"))
    shutil.copytree(tiny.folder, repo_dir / "snapshots" / MCLIP_REVISION)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    calls: list[dict[str, Any]] = []
    real = huggingface_hub.snapshot_download

    def spy(repo_id: str, **kwargs: Any) -> Any:
        calls.append({"repo_id": repo_id, **kwargs})
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    tower = MultilingualTextTower(
        MCLIP_MODEL, device="cpu", precision="fp32", image_model="openai/clip-vit-large-patch14", image_dim=16
    )
    assert tower.revision == MCLIP_REVISION and tower.model_name == MCLIP_MODEL
    assert_unit_rows(tower.encode_texts(TEXTS), len(TEXTS), 16)
    assert [(c["repo_id"], c["revision"]) for c in calls] == [(MCLIP_MODEL, MCLIP_REVISION)]
    assert set(calls[0]["allow_patterns"]) == set(CHECKPOINT_FILES)
    assert set(CHECKPOINT_FILES) == {"config.json", "pytorch_model.bin", "tokenizer.json"}


def test_an_unreachable_hub_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(
        MultilingualLoadError,
        match=f"cannot fetch multilingual model {MCLIP_MODEL} at revision {MCLIP_REVISION}.*hf download",
    ):
        MultilingualTextTower(MCLIP_MODEL, device="cpu")


# --- refusals ------------------------------------------------------------------------------------


def test_refuses_a_folder_without_tokenizer_files(copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink()
    with pytest.raises(MultilingualLoadError, match=r"no tokenizer files in .*<unk>"):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_a_tokenizer_of_the_wrong_size(copy_of: Callable[..., Path]) -> None:
    # What transformers 5 falls back to without the files: the five special tokens, all words <unk>.
    folder = copy_of()
    unigram_tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]).save_pretrained(folder)
    with pytest.raises(MultilingualLoadError, match=r"has 5 tokens but the model's embedding has \d+"):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_a_tokenizer_that_does_not_add_the_special_tokens(copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    spec = json.loads((folder / "tokenizer.json").read_text())
    (folder / "tokenizer.json").write_text(json.dumps({**spec, "post_processor": None}))
    with pytest.raises(MultilingualLoadError, match=r"does not wrap each text in <s> \.\.\. </s>"):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_a_checkpoint_without_its_head(copy_of: Callable[..., Path]) -> None:
    folder = copy_of(lambda state: state.pop("LinearTransformation.weight"))
    with pytest.raises(
        MultilingualLoadError, match=r"no linear head \(LinearTransformation.weight missing\)"
    ):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_stray_tensors(copy_of: Callable[..., Path]) -> None:
    folder = copy_of(lambda state: state.update({"text_projection.weight": torch.zeros(16, 16)}))
    with pytest.raises(
        MultilingualLoadError, match=r"1 tensors outside the M-CLIP layout.*text_projection\.weight"
    ):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_missing_and_unexpected_encoder_tensors(copy_of: Callable[..., Path]) -> None:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state.pop("transformer.encoder.layer.1.output.dense.weight")
        state["transformer.embeddings.extra.weight"] = torch.zeros(2)

    with pytest.raises(
        MultilingualLoadError,
        match=r"1 tensors missing \(transformer.encoder.layer.1.output.dense.weight\), "
        r"1 unexpected \(transformer.embeddings.extra.weight\)",
    ):
        MultilingualTextTower(str(copy_of(edit)), device="cpu")


def test_refuses_a_head_that_does_not_fit_the_config(copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "numDims": 32}))
    with pytest.raises(
        MultilingualLoadError, match=r"the linear head in .* is \(16, 128\).*need \(32, 128\)"
    ):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_a_config_that_is_not_m_clip(copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    (folder / "config.json").write_text(json.dumps({"model_type": "xlm-roberta", "hidden_size": 128}))
    with pytest.raises(MultilingualLoadError, match="is not an M-CLIP checkpoint"):
        MultilingualTextTower(str(folder), device="cpu")


def test_refuses_an_output_size_other_than_the_image_models(tiny: TinyMClip) -> None:
    with pytest.raises(
        TowerMismatch,
        match="gives 16-d vectors but the image model openai/clip-vit-large-patch14 gives 768-d",
    ):
        MultilingualTextTower(
            str(tiny.folder), device="cpu", image_model="openai/clip-vit-large-patch14", image_dim=768
        )


def test_refuses_a_tower_trained_for_another_image_model() -> None:
    # Known before anything is fetched (offline here).
    with pytest.raises(
        TowerMismatch,
        match="trained for the image model openai/clip-vit-large-patch14, not openai/clip-vit-base-patch32",
    ):
        MultilingualTextTower(
            MCLIP_MODEL, device="cpu", image_model="openai/clip-vit-base-patch32", image_dim=512
        )


def test_refuses_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(MultilingualLoadError, match="does not exist"):
        MultilingualTextTower(str(tmp_path / "nowhere"), device="cpu")


def test_refuses_an_unknown_precision(tiny: TinyMClip) -> None:
    with pytest.raises(ValueError, match="precision 'int4'"):
        MultilingualTextTower(str(tiny.folder), device="cpu", precision="int4")


def test_int8_runs_on_the_cpu_only(tiny: TinyMClip) -> None:
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        MultilingualTextTower(str(tiny.folder), device="cuda", precision="int8")
