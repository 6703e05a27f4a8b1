"""M-CLIP stand-ins in the real 2022 checkpoint layout of `M-CLIP/XLM-Roberta-Large-Vit-L-14`, built in code.

The layout (see shared/research/multilingual.md): a 188-byte-style `config.json` (`model_type: "M-CLIP"`,
`modelBase`, `numDims`, no `transformerDimensions`, no XLM-R hyperparameters), one `pytorch_model.bin`
whose keys are an `XLMRobertaModel`'s with the `transformer.` prefix, its pooler and the int64
`position_ids` buffer that transformers < 4.31 saved, plus `LinearTransformation.weight/bias`; and the
tokenizer as `tokenizer.json` (a `tokenizers` Unigram: no sentencepiece needed) with the 2022-format
`tokenizer_config.json` and `special_tokens_map.json`. The product's loader reads these folders exactly
as it reads the published one.

`build_tiny_mclip`: a few hundred tokens, hidden 128, under a second, for the tests.
`build_real_size_mclip`: the XLM-R-large architecture (24 x 1024, 250,002 tokens) with random weights,
2.24 GB of fp32 on disk like the published file, for benchmarks (no download).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-R's ids 0..3; <mask> is the last id
XLMR_LARGE_VOCAB = 250_002
# Whole words of the stand-in's vocabulary (everything else splits into characters).
TINY_WORDS = (
    "a",
    "photo",
    "of",
    "the",
    "Eiffel",
    "Tower",
    "at",
    "night",
    "hot",
    "air",
    "balloons",
    "over",
    "Cappadocia",
    "mountain",
    "lake",
    "zebra",
    "in",
    "grass",
    "фотография",
    "Эйфелева",
    "башня",
    "ночью",
    "зебра",
    "в",
    "траве",
    "воздушные",
    "шары",
    "над",
    "горы",
    "озеро",
    "Московский",
    "Кремль",
)
# The 2022 files as transformers 4.x wrote them for xlm-roberta-large (399 and 239 bytes, the published sizes).
TOKENIZER_CONFIG_2022 = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": {
        "content": "<mask>",
        "single_word": False,
        "lstrip": True,
        "rstrip": False,
        "normalized": True,
        "__type": "AddedToken",
    },
    "model_max_length": 512,
    "special_tokens_map_file": None,
    "name_or_path": "xlm-roberta-large",
    "tokenizer_class": "XLMRobertaTokenizer",
}
SPECIAL_TOKENS_MAP_2022 = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": {
        "content": "<mask>",
        "single_word": False,
        "lstrip": True,
        "rstrip": False,
        "normalized": False,
    },
}


@dataclass
class TinyMClip:
    """A built stand-in: its folder, and the in-memory modules it was saved from (for references)."""

    folder: Path
    transformer: Any  # transformers.XLMRobertaModel, with its pooler, in eval mode
    head: Any  # torch.nn.Linear(hidden, dim)
    tokenizer: Any  # the XLMRobertaTokenizer that wrote tokenizer.json


def build_tiny_mclip(
    folder: Path, dim: int = 16, hidden: int = 128, layers: int = 2, seed: int = 0
) -> TinyMClip:
    """Save a tiny M-CLIP in the 2022 layout to `folder` (created); return it with its modules."""
    import torch
    from transformers import XLMRobertaModel

    tokenizer = unigram_tokenizer(_pieces(TINY_WORDS, filler=0))
    config = _xlmr_config(len(tokenizer), hidden, layers, intermediate=2 * hidden)
    torch.manual_seed(seed)
    transformer = XLMRobertaModel(config).eval()  # with the pooler, as the 2022 AutoModel had it
    head = torch.nn.Linear(hidden, dim).eval()
    _save(folder, transformer, head, tokenizer)
    return TinyMClip(folder=folder, transformer=transformer, head=head, tokenizer=tokenizer)


def build_real_size_mclip(
    folder: Path, words: list[str] | tuple[str, ...] = TINY_WORDS, seed: int = 0
) -> Path:
    """Save the XLM-R-large M-CLIP architecture (24 layers, hidden 1024, 16 heads, 250,002 tokens,
    head 1024 -> 768) with random fp32 weights in the 2022 layout to `folder`; return it. Shapes,
    compute and memory are the published model's; the answers are meaningless. About 2.3 GB on disk.

    The tokenizer has the real vocabulary size but not its pieces: each of `words` is one piece and any
    other word splits into characters, so give it the benchmark's query words for realistic token counts.
    A folder already built (its `.complete` marker) is returned as it is."""
    import shutil

    import torch
    from transformers import XLMRobertaModel
    from transformers.initialization import no_init_weights

    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    pieces = _pieces(words, filler=XLMR_LARGE_VOCAB)
    tokenizer = unigram_tokenizer(pieces)
    config = _xlmr_config(XLMR_LARGE_VOCAB, 1024, 24, intermediate=4096)
    generator = torch.Generator().manual_seed(seed)
    with no_init_weights():  # filled below, far faster than transformers' own init
        transformer = XLMRobertaModel(config).eval()
    with torch.no_grad():
        for name, tensor in transformer.state_dict().items():
            if name.endswith("LayerNorm.weight"):
                tensor.fill_(1.0)
            elif name.endswith("bias") or "LayerNorm" in name:
                tensor.zero_()
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    head = torch.nn.Linear(1024, 768).eval()
    _save(folder, transformer, head, tokenizer)
    (folder / ".complete").write_text("ok\n")
    return folder


def unigram_tokenizer(pieces: list[str]) -> Any:
    """An XLM-R-style tokenizer over `pieces` (the four specials first, `<mask>` last): a `tokenizers`
    Unigram (unknown id 3) behind whitespace splitting and Metaspace, `<s> ... </s>` around each text."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import XLMRobertaTokenizer

    # Longer pieces are cheaper (a higher log-probability), so whole words win over characters.
    vocab = [
        (piece, 0.0 if piece in SPECIALS or piece == "<mask>" else -10.0 / len(piece)) for piece in pieces
    ]
    backend = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    # As transformers 5 rebuilds XLM-R's from tokenizer.json (and sentencepiece behaves): runs of
    # spaces, leading and trailing ones included, give no token of their own.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizer(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )


def _pieces(words: list[str] | tuple[str, ...], filler: int) -> list[str]:
    """Specials, `▁word` per word, every character alone and after `▁`, synthetic pieces up to
    `filler` tokens in all (0: none), then `<mask>`."""
    chars = sorted(
        set(string.ascii_letters + string.digits + string.punctuation)
        | {chr(c) for c in range(0x0410, 0x0450)}  # Cyrillic А..я
        | {"ё", "Ё", "é", "è", "ä", "ö", "ü", "ß", "—", "«", "»"}
        | set("".join(words))
    )
    pieces = list(SPECIALS)
    seen = set(pieces)
    for piece in ["▁", *("▁" + w for w in words), *chars, *("▁" + c for c in chars)]:
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)
    if filler:
        # Pieces no text produces (private-use characters): they only give the vocabulary its real size.
        pieces.extend(f"\ue000{i}" for i in range(filler - len(pieces) - 1))
    pieces.append("<mask>")
    return pieces


def _xlmr_config(vocab: int, hidden: int, layers: int, intermediate: int) -> Any:
    """XLM-R's settings at the given size; one attention head per 64 units, as in XLM-R base and large."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=intermediate,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
    )


def _save(folder: Path, transformer: Any, head: Any, tokenizer: Any) -> None:
    """Write the 2022 layout: config.json, pytorch_model.bin, tokenizer files."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["SentenceModelWithLinearTransformation"],
        "modelBase": "xlm-roberta-large",
        "model_type": "M-CLIP",
        "numDims": head.out_features,
        "transformers_version": "4.8.1",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    state = {"transformer." + name: tensor for name, tensor in transformer.state_dict().items()}
    positions = transformer.config.max_position_embeddings
    state["transformer.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
    state["LinearTransformation.weight"] = head.weight.detach()
    state["LinearTransformation.bias"] = head.bias.detach()
    torch.save(state, folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG_2022))
    (folder / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP_2022))
