"""The CPU attention of the image tower: the same answers as transformers' sdpa, and used where meant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from core.model.rewrites.attention import NAME, cpu_attention


class _Attention(torch.nn.Module):
    is_causal = False


def _qkv(dtype: torch.dtype, batch: int = 3, heads: int = 4, tokens: int = 257, head_dim: int = 64):
    """q, k, v laid out the way CLIP's attention hands them over: (batch, tokens, heads, dim) transposed."""
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(batch, tokens, heads, head_dim, generator=gen).to(dtype).transpose(1, 2) for _ in range(3)
    ]


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_matches_sdpa_on_unmasked_attention(dtype: torch.dtype, atol: float) -> None:
    q, k, v = _qkv(dtype)
    module = _Attention().eval()
    with torch.inference_mode():
        ours, weights = cpu_attention(module, q, k, v, None, scaling=0.125)
        theirs, _ = sdpa_attention_forward(module, q, k, v, None, scaling=0.125)
        exact, _ = sdpa_attention_forward(module, q.float(), k.float(), v.float(), None, scaling=0.125)
    assert weights is None
    assert ours.shape == theirs.shape == (3, 257, 4, 64) and ours.dtype == dtype and ours.is_contiguous()
    torch.testing.assert_close(ours.float(), exact, atol=atol, rtol=0)
    torch.testing.assert_close(ours.float(), theirs.float(), atol=atol, rtol=0)


def test_leaves_the_inputs_untouched() -> None:
    q, k, v = _qkv(torch.float32)
    q_copy = q.clone()
    q_contiguous = q.contiguous()  # a contiguous query must not be scaled in place
    with torch.inference_mode():
        cpu_attention(_Attention().eval(), q_contiguous, k, v, None, scaling=0.125)
    torch.testing.assert_close(q, q_copy, atol=0, rtol=0)
    torch.testing.assert_close(q_contiguous, q_copy, atol=0, rtol=0)


@pytest.mark.parametrize("masking", ["mask", "is_causal"])
def test_masked_or_causal_attention_goes_to_sdpa(masking: str) -> None:
    q, k, v = _qkv(torch.float32, tokens=9)
    module = _Attention().eval()
    mask = torch.triu(torch.full((9, 9), float("-inf")), diagonal=1)[None, None]
    kwargs = {"is_causal": True} if masking == "is_causal" else {}
    given = mask if masking == "mask" else None
    with torch.inference_mode():
        ours, _ = cpu_attention(module, q, k, v, given, scaling=0.125, **kwargs)
        theirs, _ = sdpa_attention_forward(module, q, k, v, given, scaling=0.125, **kwargs)
        unmasked, _ = cpu_attention(module, q, k, v, None, scaling=0.125)
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    assert not torch.allclose(ours, unmasked, atol=1e-3)  # the mask really applied


def test_the_encoder_uses_it_for_images_only(encoder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import transformers.integrations.sdpa_attention as sdpa_module

    from tests.image_factory import photo

    config = encoder._clip().config
    assert config.vision_config._attn_implementation == NAME
    assert config.text_config._attn_implementation == "sdpa"

    def no_fallback(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image tower fell back to sdpa")

    monkeypatch.setattr(sdpa_module, "sdpa_attention_forward", no_fallback)
    assert encoder.image.encode_images([photo(1)]).shape == (1, encoder.dim)


def test_images_encode_the_same_as_with_sdpa(encoder) -> None:  # type: ignore[no-untyped-def]
    from tests.image_factory import photo

    images = [photo(seed) for seed in range(4)]
    clip = encoder._clip()
    ours = encoder.image.encode_images(images)
    clip.set_attn_implementation({"vision_config": "sdpa"})
    try:
        theirs = encoder.image.encode_images(images)
    finally:
        clip.set_attn_implementation({"vision_config": NAME})
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert not np.allclose(ours[0], ours[1], atol=1e-3)  # distinct images, distinct vectors
