"""The encoder's exact rewrites of CLIP (class-token-only last layer, quick_gelu folded into SiLU,
Linear weights packed for oneDNN): the same embeddings as the model loaded plainly through
sentence-transformers, and used where meant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.models.clip.modeling_clip import CLIPMLP, CLIPEncoderLayer

from core.model.rewrites import class_token_layer
from core.model.rewrites.class_token_layer import ClassTokenLastLayer
from core.model.rewrites.fused_activation import fold_quick_gelu
from core.model.rewrites.packed_linear import PackedLinear, pack_linears, packing_works
from tests.image_factory import photo


@pytest.fixture(scope="module")
def plain(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny CLIP as sentence-transformers loads it, untouched, in float32."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_dir), device="cpu").eval()


def _plain_encode(model, inputs: list) -> np.ndarray:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        return model.encode(inputs, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)


def test_the_encoder_embeds_images_and_texts_as_the_plain_model_does(encoder, plain) -> None:  # type: ignore[no-untyped-def]
    images = [photo(seed) for seed in range(5)]
    texts = ["the eiffel tower at night", "a waterfall in iceland", "x"]
    np.testing.assert_allclose(encoder.image.encode_images(images), _plain_encode(plain, images), atol=1e-5)
    np.testing.assert_allclose(encoder.text.encode_texts(texts), _plain_encode(plain, texts), atol=1e-5)


def test_the_encoder_has_both_rewrites_in_place(encoder) -> None:  # type: ignore[no-untyped-def]
    clip = encoder._clip()
    layers = clip.vision_model.encoder.layers
    assert type(layers[-1]) is ClassTokenLastLayer
    assert all(type(layer) is CLIPEncoderLayer for layer in layers[:-1])
    assert all(type(layer) is CLIPEncoderLayer for layer in clip.text_model.encoder.layers)
    mlps = [m for m in clip.modules() if isinstance(m, CLIPMLP)]
    # quick_gelu became SiLU, which the packed fc1 now applies itself.
    assert mlps and all(isinstance(m.activation_fn, torch.nn.Identity) for m in mlps)
    assert all(m.fc1.activation == "swish" and m.fc2.activation == "none" for m in mlps)
    assert not [m for m in clip.modules() if type(m) is torch.nn.Linear]
    assert {type(clip.visual_projection), type(clip.text_projection)} == {PackedLinear}
    # The parameters keep their names (nothing wraps a layer).
    names = {name for name, _ in clip.named_parameters()}
    assert "vision_model.encoder.layers.1.mlp.fc1.weight" in names


def _vision_layer(seed: int = 0) -> CLIPEncoderLayer:
    from transformers import CLIPVisionConfig

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4)
    config._attn_implementation = "sdpa"
    return CLIPEncoderLayer(config).eval()


def test_the_class_token_layer_gives_the_full_layers_class_token() -> None:
    layer = _vision_layer()
    hidden = torch.randn(3, 17, 64)
    with torch.inference_mode():
        full = layer(hidden, None)
        layer.__class__ = ClassTokenLastLayer
        ours = layer(hidden, None)
    assert ours.shape == (3, 1, 64)
    torch.testing.assert_close(ours, full[:, :1], atol=1e-5, rtol=0)


def test_the_class_token_layer_runs_the_full_layer_when_masked_or_training() -> None:
    layer = _vision_layer()
    hidden = torch.randn(2, 5, 64)
    mask = torch.zeros(2, 1, 5, 5)
    with torch.no_grad():
        full = layer(hidden, mask)
        layer.__class__ = ClassTokenLastLayer
        masked = layer(hidden, mask)
        layer.train()
        training = layer(hidden, None)
    assert masked.shape == training.shape == (2, 5, 64)
    torch.testing.assert_close(masked, full, atol=0, rtol=0)


def test_install_is_idempotent_reversible_and_leaves_other_models_alone(tiny_model_dir: Path) -> None:
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(tiny_model_dir)
    assert class_token_layer.install(clip) and class_token_layer.install(clip)
    assert type(clip.vision_model.encoder.layers[-1]) is ClassTokenLastLayer
    class_token_layer.uninstall(clip)
    assert type(clip.vision_model.encoder.layers[-1]) is CLIPEncoderLayer
    assert not class_token_layer.install(torch.nn.Linear(2, 2))


def test_folding_quick_gelu_keeps_the_mlps_function() -> None:
    from transformers import CLIPTextConfig

    torch.manual_seed(0)
    mlp = CLIPMLP(CLIPTextConfig(hidden_size=32, intermediate_size=64)).eval()
    container = torch.nn.Sequential(mlp)
    x = torch.randn(4, 7, 32) * 3
    with torch.inference_mode():
        before = mlp(x)
        assert fold_quick_gelu(container) == 1
        after = mlp(x)
        assert fold_quick_gelu(container) == 0  # already folded: nothing more to do
    assert isinstance(mlp.activation_fn, torch.nn.SiLU)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_folding_skips_quantized_mlps() -> None:
    from transformers import CLIPTextConfig

    mlp = CLIPMLP(CLIPTextConfig(hidden_size=32, intermediate_size=64)).eval()
    quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(mlp), {torch.nn.Linear})
    assert fold_quick_gelu(quantized) == 0
    assert not isinstance(quantized[0].activation_fn, torch.nn.SiLU)


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("silu", [False, True])
def test_a_packed_linear_gives_the_plain_linears_products(
    dtype: torch.dtype, atol: float, silu: bool
) -> None:
    if not packing_works(dtype):
        pytest.skip(f"this CPU cannot pack {dtype} weights")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96).to(dtype).eval()
    x = torch.randn(3, 17, 64).to(dtype)
    if silu:  # fused, SiLU sees the product before it is rounded to bf16: one bf16 step apart at most
        atol = max(atol, 2e-2)
    views = {
        "contiguous": lambda t: t,
        "a slice": lambda t: t[:, :1],
        "transposed": lambda t: t.transpose(0, 1),
    }
    with torch.inference_mode():
        expected = torch.nn.functional.silu(linear(x)) if silu else linear(x)
        packed = PackedLinear(linear, silu=silu)
        for view in views.values():
            ours = packed(view(x))
            assert ours.shape == view(expected).shape and ours.dtype == dtype
            torch.testing.assert_close(ours.float(), view(expected).float(), atol=atol, rtol=0)


def test_pack_linears_packs_plain_cpu_linears_and_fuses_the_mlps_silu() -> None:
    from transformers import CLIPTextConfig

    torch.manual_seed(0)
    mlp = CLIPMLP(CLIPTextConfig(hidden_size=32, intermediate_size=64)).eval()
    fold_quick_gelu(torch.nn.Sequential(mlp))
    half = torch.nn.Linear(4, 4).half()
    model = torch.nn.ModuleDict({"mlp": mlp, "fp16": half, "norm": torch.nn.LayerNorm(32)})
    x = torch.randn(5, 32)
    with torch.inference_mode():
        before = mlp(x)
        assert pack_linears(model) == 2  # fc1 and fc2; the fp16 Linear is left as it is
        after = mlp(x)
    assert type(mlp.fc1) is PackedLinear and mlp.fc1.activation == "swish"
    assert isinstance(mlp.activation_fn, torch.nn.Identity) and model["fp16"] is half
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert pack_linears(model) == 0  # nothing left to pack


def test_without_working_ops_the_linears_stay_plain(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.model.rewrites.packed_linear as packed_linear

    monkeypatch.setattr(packed_linear, "packing_works", lambda dtype=None: False)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert pack_linears(model) == 0 and type(model[0]) is torch.nn.Linear


def test_folding_into_bf16_rounds_once_from_float32_and_leaves_the_loaded_weights_alone() -> None:
    from transformers import CLIPTextConfig

    torch.manual_seed(0)
    mlp = CLIPMLP(CLIPTextConfig(hidden_size=32, intermediate_size=64)).eval()
    loaded = mlp.fc1.weight
    loaded_copy = loaded.detach().clone()
    assert fold_quick_gelu(torch.nn.Sequential(mlp), torch.bfloat16) == 1
    assert mlp.fc1.weight.dtype == mlp.fc1.bias.dtype == mlp.fc2.weight.dtype == torch.bfloat16
    assert torch.equal(mlp.fc1.weight, (loaded_copy * 1.702).to(torch.bfloat16))
    assert torch.equal(loaded, loaded_copy)  # a new tensor: the (file-mapped) original is not written


def test_packing_frees_each_plain_weight_as_it_goes() -> None:
    import weakref

    model = torch.nn.Sequential(*(torch.nn.Sequential(torch.nn.Linear(16, 16)) for _ in range(3)))
    plain = [weakref.ref(block[0]) for block in model]
    alive_at_each_call: list[int] = []
    assert pack_linears(
        model, after_each=lambda: alive_at_each_call.append(sum(r() is not None for r in plain))
    )
    assert alive_at_each_call == [2, 1, 0]


def test_release_freed_memory_applies_on_linux() -> None:
    import sys

    from core.model import release_freed_memory

    assert release_freed_memory() is sys.platform.startswith("linux")


@pytest.mark.parametrize(
    ("precision", "min_cosine"), [("fp32", 0.99999), ("bf16", 0.99), ("fp16", 0.999), ("int8", 0.99)]
)
def test_every_precision_with_the_rewrites_stays_close_to_the_plain_model(
    tiny_model_dir: Path, plain, precision: str, min_cosine: float
) -> None:  # type: ignore[no-untyped-def]
    from core.model import ClipModel

    encoder = ClipModel(str(tiny_model_dir), device="cpu", precision=precision)
    images = [photo(seed) for seed in range(4)]
    texts = ["the eiffel tower at night", "a waterfall in iceland"]
    for ours, theirs in (
        (encoder.image.encode_images(images), _plain_encode(plain, images)),
        (encoder.text.encode_texts(texts), _plain_encode(plain, texts)),
    ):
        assert float(np.sum(ours * theirs, axis=1).min()) >= min_cosine


def test_a_dtype_the_cpu_cannot_pack_stays_plain(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.model.rewrites.packed_linear as packed_linear

    assert not packing_works(torch.float16)
    monkeypatch.setattr(packed_linear, "packing_works", lambda dtype=torch.float32: dtype == torch.float32)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4).to(torch.bfloat16))
    assert pack_linears(model) == 1
    assert type(model[0]) is PackedLinear and type(model[1]) is torch.nn.Linear


def test_silu_is_fused_only_into_a_clip_mlp() -> None:
    class Other(torch.nn.Module):  # an fc1/activation_fn pair whose forward may be anything
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.activation_fn = torch.nn.Linear(4, 4), torch.nn.SiLU()

    other = Other()
    assert pack_linears(other) == 1
    assert other.fc1.activation == "none" and isinstance(other.activation_fn, torch.nn.SiLU)


def test_an_fp32_encoder_lets_go_of_the_weights_file(tmp_path: Path) -> None:
    import gc

    from sentence_transformers import SentenceTransformer

    from core.model import ClipModel
    from devtools.tiny_clip import build_tiny_clip

    folder = build_tiny_clip(tmp_path / "clip")

    def mapped() -> bool:
        return str(folder.resolve()) in Path("/proc/self/maps").read_text()

    plain = SentenceTransformer(str(folder), device="cpu")
    assert mapped()  # the plain model's fp32 weights are the file's pages (so this test can fail)
    del plain
    gc.collect()  # the plain model holds reference cycles
    assert not mapped()
    encoder = ClipModel(str(folder), device="cpu", precision="fp32")
    assert encoder.text.encode_texts(["a photo"]).shape == (1, encoder.dim)
    assert not mapped()  # packed copies and owned tensors: one copy in memory, not two
