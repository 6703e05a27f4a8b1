"""The models the bench measures: the real ViT-L/14 architecture with random weights, or the tiny test CLIP.

Nothing can be downloaded here, so the ViT-L/14 is built from its config (the same shapes, compute and
memory as `openai/clip-vit-large-patch14`; only the answers are meaningless), saved with `save_pretrained`
under `bench/.cache/`, and loaded through `core.model.load_clip` exactly like the product loads the
real one. The tokenizer is CLIP's own BPE (49,408 tokens), built from the merges file OpenAI published
with CLIP (`clip_bpe_simple_vocab_16e6.txt.gz`, MIT licence, as shipped in the open_clip_torch wheel), so a
query has as many tokens as it would with the real model: text cost grows with the token count.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
VIT_L14_VOCAB = 49408
# Bump when the architecture or the files change, so a stale cache is rebuilt.
_VERSION = "2"
BPE_MERGES = Path(__file__).resolve().parent / "clip_bpe_simple_vocab_16e6.txt.gz"


def clip_tokenizer(model_max_length: int = 77):  # type: ignore[no-untyped-def]
    """CLIP's BPE tokenizer, built the way OpenAI's `simple_tokenizer` builds it from the merges file:
    256 bytes, the same with `</w>`, the first 48,894 merges, then the two special tokens."""
    import gzip

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.decompress(BPE_MERGES.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != VIT_L14_VOCAB:
        raise RuntimeError(f"{BPE_MERGES.name} gave {len(vocab)} tokens, expected {VIT_L14_VOCAB}")
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def vit_l14_config():  # type: ignore[no-untyped-def]
    """`openai/clip-vit-large-patch14`'s architecture (its config.json, minus the weights)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": VIT_L14_VOCAB,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 77,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
            # As in the published config.json (eos 2 selects the pooling on the highest id, <|endoftext|>).
            "bos_token_id": 0,
            "eos_token_id": 2,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
        },
        projection_dim=768,
        logit_scale_init_value=4.6052,
    )


def build_vit_l14(cache: Path = CACHE, seed: int = 0) -> Path:
    """The ViT-L/14 folder under `cache`, built once (about 30 s, 1.7 GB of fp32 safetensors)."""
    folder = cache / f"clip-vit-large-patch14-random-v{_VERSION}"
    if (folder / ".complete").exists():
        return folder
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    model = CLIPModel(vit_l14_config())
    model.save_pretrained(folder)  # fp32 on disk, like the published checkpoint
    del model
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
        ),
        tokenizer=clip_tokenizer(),
    )
    processor.save_pretrained(folder)
    (folder / ".complete").write_text("ok\n")
    return folder


def build_tiny(cache: Path = CACHE) -> Path:
    """The tests' tiny CLIP (devtools.tiny_clip), under `cache`."""
    from devtools.tiny_clip import build_tiny_clip

    folder = cache / "tiny-clip"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        build_tiny_clip(folder)
        (folder / ".complete").write_text("ok\n")
    return folder


def build_model(name: str, cache: Path = CACHE) -> Path:
    """`vit-l14` or `tiny`: the folder to give CLIP_MODEL."""
    if name == "vit-l14":
        return build_vit_l14(cache)
    if name == "tiny":
        return build_tiny(cache)
    raise ValueError(f"unknown bench model {name!r} (vit-l14 or tiny)")
