"""The multilingual text tower: M-CLIP's XLM-RoBERTa-large, trained (MSE) into CLIP ViT-L/14's text space.

`M-CLIP/XLM-Roberta-Large-Vit-L-14` reproduces OpenAI CLIP ViT-L/14's text embeddings from captions in
48 languages, so its vectors query the ViT-L/14 image vectors already stored: Russian search works
without re-encoding a photo. Its 2022 checkpoint cannot be read by `AutoModel` (a 188-byte config with
`model_type: "M-CLIP"` and no XLM-R hyperparameters), and the `multilingual-clip` package fails on
transformers 5, so it is loaded here with plain transformers: the XLM-R architecture is read off the
tensor shapes, the weights are loaded strictly, the tokenizer comes from `tokenizer.json`.

The forward pass is the published one (`multilingual_clip/pt_multilingual_clip.py`): the mean of the
last hidden state over the attention mask, `<s>` and `</s>` included, then the linear head
`LinearTransformation` (1024 -> 768); the vectors are L2-normalised here, as every user of the model
does. Texts are cut at 77 tokens like CLIP's (M-CLIP was trained on captions of at most 32 tokens, and
its own position limit is 512), never an error; `truncated(texts)` says which were.

Precision as for CLIP: bf16 weights on a CPU with bf16 instructions, fp16 on CUDA; the weights are
created in that dtype and filled from the file, so no fp32 copy is kept. On a CPU without bf16, `auto` is
int8 (`tower_precision`): a short query is bound by reading the encoder's 303 M Linear weights, 1.2 GB in
fp32 per query, a quarter of that in int8 (dynamic quantization, as CLIP_PRECISION=int8 does for CLIP);
there the word embedding is kept in bf16 (a row lookup, added to fp32 position embeddings, so fp32 from
there on). `fp32` stays available for exact answers. The pooling and the small head (3 MB) run in fp32.
The 250,002 x 1024 word embedding is an `nn.Embedding`: a row lookup per token, no product, and one copy.
On the CPU the encoder's Linear layers are packed for oneDNN (core/model/rewrites/packed_linear.py) where
that dtype packs exactly. All torch work runs on the model thread.

See shared/research/multilingual.md for the checkpoint's layout and the evidence.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.model.device import resolve_device, resolve_precision
from core.model.memory import keep_freed_memory, release_freed_memory
from core.model.model_thread import Job, model_thread

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MCLIP_MODEL = "M-CLIP/XLM-Roberta-Large-Vit-L-14"
# `main` of the hub repository since 2022-09-15 (README commits after "PyTorch Model" e710292).
MCLIP_REVISION = "40afa80a85e8efa990384a24bbe5a1f6f1cc81b5"
# All the tower reads: not tf_model.h5 (2.24 GB), nor sentencepiece.bpe.model, tokenizer_config.json and
# special_tokens_map.json (tokenizer.json holds the whole tokenizer).
CHECKPOINT_FILES = ("config.json", "pytorch_model.bin", "tokenizer.json")
# The CLIP image models each published M-CLIP text tower was trained against (by its teacher's text
# embeddings), by the names CLIP_MODEL may give them. The 2022 configs do not say; their names do.
_VIT_L14 = ("openai/clip-vit-large-patch14", "sentence-transformers/clip-vit-l-14", "clip-vit-l-14")
_VIT_B32 = ("openai/clip-vit-base-patch32", "sentence-transformers/clip-vit-b-32", "clip-vit-b-32")
PAIRED_IMAGE_MODELS: dict[str, tuple[str, ...]] = {
    "m-clip/xlm-roberta-large-vit-l-14": _VIT_L14,
    "m-clip/labse-vit-l-14": _VIT_L14,
    "m-clip/xlm-roberta-large-vit-b-32": _VIT_B32,
    "m-clip/xlm-roberta-large-vit-b-16plus": ("open_clip ViT-B-16-plus-240",),
}
CLIP_MAX_TOKENS = 77
HEAD = ("LinearTransformation.weight", "LinearTransformation.bias")
# In the checkpoint but not used by the forward pass: the pooler, and the position ids buffer that
# transformers < 4.31 saved (today's XLM-R builds it, not persistent).
_UNUSED = ("pooler.", "embeddings.position_ids", "embeddings.token_type_ids")
_BATCH = 32
_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class MultilingualLoadError(RuntimeError):
    """The multilingual checkpoint cannot be used: missing or broken files, an unreachable hub..."""


class TowerMismatch(MultilingualLoadError):
    """The checkpoint was made for another image model than the one in use (its size or its name)."""


class MultilingualTextTower:
    """M-CLIP's text tower behind the `TextTower` interface: texts in, unit float32 rows out, in the
    space of the CLIP image model it was trained against. Thread-safe (work runs on the model thread)."""

    name = "multilingual"

    def __init__(
        self,
        model: str = MCLIP_MODEL,
        *,
        device: str = "auto",
        precision: str = "auto",
        image_model: str | None = None,
        image_dim: int | None = None,
        max_tokens: int = CLIP_MAX_TOKENS,
        pack: bool = True,
    ) -> None:
        """Load `model`: a local folder in the M-CLIP layout, or a hub name, optionally `name@revision`
        (the default model is fetched at `MCLIP_REVISION`). With `image_model` (CLIP_MODEL) and
        `image_dim` (its vector size), a checkpoint made for another image model is refused
        (`TowerMismatch`); any unusable checkpoint raises `MultilingualLoadError` with the reason.
        `pack=False` keeps plain Linear layers (for comparisons)."""
        self.device = resolve_device(device)
        self.precision = tower_precision(precision, self.device)
        if self.precision not in _PRECISIONS:
            raise ValueError(f"multilingual tower precision {self.precision!r}: use one of {_PRECISIONS}")
        if self.precision == "int8" and self.device != "cpu":
            raise ValueError("multilingual tower precision int8 runs on the CPU only (dynamic quantization)")
        self.model_name = model
        _check_pairing(model, image_model)  # before fetching 2.2 GB for nothing
        folder, self.revision = resolve_checkpoint(model)
        self.folder = folder
        config = _read_config(folder)
        self.dim = int(config["numDims"])
        if image_dim is not None and self.dim != image_dim:
            raise TowerMismatch(
                f"multilingual model {model} gives {self.dim}-d vectors but the image model"
                f"{' ' + image_model if image_model else ''} gives {image_dim}-d: it was trained for "
                "another CLIP; set "
                "MULTILINGUAL_MODEL to the M-CLIP model of your CLIP_MODEL, or off"
            )
        if self.device == "cpu":
            keep_freed_memory()
        self._tokenizer = _load_tokenizer(folder)  # before the weights: a missing file fails at once
        log.info("loading multilingual text tower %s on %s (%s)", model, self.device, self.precision)
        self._transformer, self._head = model_thread().call(lambda: self._load(config, pack))
        xlmr = self._transformer.config
        # XLM-R numbers positions from pad_token_id + 1: 514 embeddings hold 512 tokens.
        self.max_tokens = min(max_tokens, int(xlmr.max_position_embeddings) - int(xlmr.pad_token_id) - 1)
        # Set once, before any use (then the tokenizer is only read, from any thread): the content is
        # cut so that it fits with <s> and </s>, what is cut is kept as `overflowing`.
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer.enable_padding(pad_id=int(xlmr.pad_token_id), pad_token="<pad>")

    def _load(self, config: dict[str, Any], pack: bool) -> tuple[Any, torch.nn.Module]:
        import torch
        from transformers import XLMRobertaModel
        from transformers.initialization import no_init_weights

        state = _read_weights(self.folder)
        transformer_state, weight, bias = _split_state(state, self.folder)
        del state
        xlmr = _xlmr_config(transformer_state, self.folder)
        _check_head(weight, bias, xlmr.hidden_size, config, self.folder)
        _check_tokenizer(self._tokenizer, xlmr, self.folder)
        # int8 is quantized from fp32 weights, after loading.
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}[
            self.precision
        ]
        # Created in the final dtype on the final device, without random init, then filled from the
        # file: no fp32 copy beside the bf16 one, and no 10 s of initialising 560 M parameters.
        with no_init_weights(), torch.device(self.device), _default_dtype(dtype):
            transformer = XLMRobertaModel(xlmr, add_pooling_layer=False)
        _check_keys(set(transformer.state_dict()), set(transformer_state), self.folder)
        transformer.load_state_dict(transformer_state, strict=True)
        del transformer_state
        transformer.eval().requires_grad_(False)
        head = torch.nn.Linear(weight.shape[1], weight.shape[0], device=self.device)
        head.load_state_dict({"weight": weight, "bias": bias})
        head.eval().requires_grad_(False)
        if self.precision == "int8":
            _quantize(transformer)
            gc.collect()  # the replaced fp32 Linear layers sit in reference cycles
        elif self.device == "cpu" and pack:
            from core.model.rewrites.packed_linear import pack_linears

            pack_linears(transformer, after_each=release_freed_memory)
        if self.device == "cpu":
            release_freed_memory()
        return transformer, head

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts (each cut at `max_tokens` tokens, never an error); rows are unit float32 vectors.
        Concurrent callers share forward passes, as with CLIP's text tower."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        job = Job(self._forward, list(texts), batch_key=(id(self), "texts"))
        vectors: np.ndarray = model_thread().run(job)
        return vectors

    def truncated(self, texts: list[str]) -> list[bool]:
        """For each text, whether `encode_texts` cuts it (more than `max_tokens` tokens, `<s>` and
        `</s>` included). Tokenizer only: no torch, any thread, about a millisecond."""
        return [bool(encoding.overflowing) for encoding in self._tokenizer.encode_batch(list(texts))]

    def warm_up(self) -> None:
        """Run one query through the model so the first real one is not slower."""
        self.encode_texts(["фотография достопримечательности"])

    def torch_module(self) -> torch.nn.Module:
        """The XLM-R encoder (for benchmarks and memory reports); the head is `LinearTransformation`."""
        module: torch.nn.Module = self._transformer
        return module

    def _forward(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Similar lengths together, so a shared pass pads little.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        # int8 quantizes activations with one scale per call: a text is encoded alone there, so its
        # vector never depends on the texts it happened to share a pass with.
        batch = 1 if self.precision == "int8" else _BATCH
        with torch.inference_mode():
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                encodings = self._tokenizer.encode_batch([texts[i] for i in rows])
                ids = torch.tensor([e.ids for e in encodings], device=self.device)
                attention = torch.tensor([e.attention_mask for e in encodings], device=self.device)
                hidden = self._transformer(input_ids=ids, attention_mask=attention).last_hidden_state
                mask = attention.unsqueeze(-1).float()
                pooled = (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1)
                vectors = torch.nn.functional.normalize(self._head(pooled), dim=-1)
                out[rows] = vectors.cpu().numpy()
        return out


def tower_precision(requested: str, device: str) -> str:
    """`auto` for this tower: fp16 on CUDA and bf16 on a CPU with bf16, as CLIP's, but int8 on a CPU
    without bf16, where fp32 reads four times the bytes per query (see the module docstring)."""
    resolved = resolve_precision(requested, device)
    if requested == "auto" and device == "cpu" and resolved == "fp32":
        return "int8"
    return resolved


def _quantize(transformer: Any) -> None:
    """Give the encoder, in place, int8 Linear layers (weights per tensor, activations quantized per call) and a
    bf16 word embedding; everything after the embedding sum stays fp32."""
    import torch

    transformer.embeddings.word_embeddings.to(torch.bfloat16)
    with warnings.catch_warnings():
        # torch 2.13 still ships eager dynamic quantization but warns that quantized tensors will go.
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.ao.quantization")
        torch.ao.quantization.quantize_dynamic(
            transformer,
            {torch.nn.Linear},
            dtype=torch.qint8,
            inplace=True,  # no second fp32 copy
        )


def resolve_checkpoint(model: str) -> tuple[Path, str | None]:
    """The local folder of `model` (a folder, or a hub name fetched once into the hub cache, only
    `CHECKPOINT_FILES`) and the revision it holds (None for a folder)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path, None
    if model.startswith(("/", ".", "~")) or path.exists():
        raise MultilingualLoadError(f"multilingual model folder {model} does not exist (or is not a folder)")
    repo, _, revision = model.partition("@")
    if not revision:
        if repo == MCLIP_MODEL:
            revision = MCLIP_REVISION
        else:
            revision = "main"
            log.warning(
                "multilingual model %s has no pinned revision: using main (pin it as name@commit)", repo
            )
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=list(CHECKPOINT_FILES))
    except (OSError, ValueError) as err:
        raise MultilingualLoadError(
            f"cannot fetch multilingual model {repo} at revision {revision}: {err}. On an offline "
            f"machine download it beforehand (hf download {repo} --revision {revision} "
            f"{' '.join(CHECKPOINT_FILES)}) or set MULTILINGUAL_MODEL to a folder holding those files"
        ) from err
    return Path(str(folder)), revision


def attention_heads(hidden: int) -> int:
    """XLM-R's head count for a hidden size: heads of 64 units (base 768 -> 12, large 1024 -> 16).
    Shapes cannot tell it, and a wrong count gives silently wrong vectors."""
    return hidden // 64


def check_fit(model: str, image_model: str, image_dim: int) -> None:
    """Refuse (`TowerMismatch`) a tower that cannot fit `image_model` (CLIP_MODEL, `image_dim`-d) by
    what is known without loading it: a published tower's teacher, a local folder's numDims. Cheap (no
    download, no weights), so a service can refuse before it serves; the load checks again."""
    _check_pairing(model, image_model)
    folder = Path(model).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        dim = _read_config(folder).get("numDims")
        if dim != image_dim:
            raise TowerMismatch(
                f"multilingual model {model} gives {dim}-d vectors but the image model {image_model} "
                f"gives {image_dim}-d: it was trained for another CLIP; set MULTILINGUAL_MODEL to the "
                "M-CLIP model of your CLIP_MODEL, or off"
            )


def pairs_with(model: str, image_model: str) -> bool:
    """Whether the published tower `model` is known to be trained for `image_model` (by name)."""
    paired = PAIRED_IMAGE_MODELS.get(model.partition("@")[0].lower())
    return paired is not None and image_model.lower() in paired


def _check_pairing(model: str, image_model: str | None) -> None:
    """Refuse a published M-CLIP tower whose CLIP teacher is known and is not `image_model`."""
    if image_model is None or Path(model).expanduser().is_dir() or Path(image_model).expanduser().is_dir():
        return  # a folder says nothing about what it was trained for: only the size check applies
    repo = model.partition("@")[0]
    paired = PAIRED_IMAGE_MODELS.get(repo.lower())
    if paired is not None and image_model.lower() not in paired:
        raise TowerMismatch(
            f"multilingual model {repo} was trained for the image model {paired[0]}, not {image_model}: "
            "its vectors would not be comparable with the stored ones; set MULTILINGUAL_MODEL to the "
            "M-CLIP model of your CLIP_MODEL, or off"
        )


def _read_config(folder: Path) -> dict[str, Any]:
    """config.json, checked to be an M-CLIP one on an XLM-RoBERTa base."""
    try:
        config: dict[str, Any] = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise MultilingualLoadError(f"no readable config.json in {folder}: {err}") from err
    if config.get("model_type") != "M-CLIP" or not isinstance(config.get("numDims"), int):
        raise MultilingualLoadError(
            f"{folder} is not an M-CLIP checkpoint: its config.json needs model_type 'M-CLIP' and an "
            f"integer numDims (found model_type {config.get('model_type')!r}, numDims {config.get('numDims')!r})"
        )
    base = str(config.get("modelBase", ""))
    if "xlm-roberta" not in base.lower():
        raise MultilingualLoadError(
            f"{folder} is an M-CLIP model on {base!r}: only XLM-RoBERTa-based ones load here"
        )
    return config


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: model.safetensors when present, else pytorch_model.bin (a pickle of
    tensors only, read with weights_only and memory-mapped when its format allows)."""
    import torch

    safetensors, pickle = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if safetensors.is_file():
            from safetensors.torch import load_file

            return load_file(safetensors)
        if not pickle.is_file():
            raise MultilingualLoadError(
                f"no weights in {folder}: need pytorch_model.bin or model.safetensors"
            )
        try:
            state: dict[str, torch.Tensor] = torch.load(
                pickle, map_location="cpu", weights_only=True, mmap=True
            )
        except RuntimeError:  # the pre-1.6 format cannot be mapped
            state = torch.load(pickle, map_location="cpu", weights_only=True)
        return state
    except MultilingualLoadError:
        raise
    except Exception as err:
        raise MultilingualLoadError(f"cannot read the weights in {folder}: {err}") from err


def _split_state(
    state: dict[str, torch.Tensor], folder: Path
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The XLM-R tensors (prefix removed, unused ones dropped), the head's weight and bias."""
    missing_head = [key for key in HEAD if key not in state]
    if missing_head:
        raise MultilingualLoadError(
            f"the checkpoint in {folder} has no linear head ({', '.join(missing_head)} missing): "
            "it is not a complete M-CLIP text tower"
        )
    stray = sorted(key for key in state if key not in HEAD and not key.startswith("transformer."))
    if stray:
        raise MultilingualLoadError(
            f"the checkpoint in {folder} has {len(stray)} tensors outside the M-CLIP layout "
            f"(transformer.* and LinearTransformation.*): {', '.join(stray[:5])}"
        )
    transformer = {
        key.removeprefix("transformer."): tensor
        for key, tensor in state.items()
        if key.startswith("transformer.") and not key.removeprefix("transformer.").startswith(_UNUSED)
    }
    return transformer, state[HEAD[0]], state[HEAD[1]]


def _xlmr_config(state: dict[str, torch.Tensor], folder: Path) -> Any:
    """XLM-R's architecture read off the tensor shapes (the 2022 config does not hold it)."""
    from transformers import XLMRobertaConfig

    needed = (
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "encoder.layer.0.intermediate.dense.weight",
    )
    missing = [f"transformer.{key}" for key in needed if key not in state]
    if missing:
        raise MultilingualLoadError(
            f"the checkpoint in {folder} misses XLM-RoBERTa tensors: {', '.join(missing)}"
        )
    words = state["embeddings.word_embeddings.weight"]
    hidden = int(words.shape[1])
    if hidden % 64:
        raise MultilingualLoadError(f"the checkpoint in {folder} has hidden size {hidden}, not XLM-R's")
    layers = 1 + max(int(key.split(".")[2]) for key in state if key.startswith("encoder.layer."))
    return XLMRobertaConfig(
        vocab_size=int(words.shape[0]),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=attention_heads(hidden),
        intermediate_size=int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        max_position_embeddings=int(state["embeddings.position_embeddings.weight"].shape[0]),
        type_vocab_size=int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
    )


def _check_head(
    weight: torch.Tensor, bias: torch.Tensor, hidden: int, config: dict[str, Any], folder: Path
) -> None:
    """The head maps the encoder's width to numDims (and transformerDimensions, when the config has it)."""
    width = int(config.get("transformerDimensions", hidden))
    expected = (int(config["numDims"]), hidden)
    if tuple(weight.shape) != expected or tuple(bias.shape) != expected[:1] or width != hidden:
        raise MultilingualLoadError(
            f"the linear head in {folder} is {tuple(weight.shape)} (bias {tuple(bias.shape)}), but the "
            f"config's numDims and the encoder's width {hidden} (transformerDimensions {width}) need {expected}"
        )


def _check_keys(expected: set[str], given: set[str], folder: Path) -> None:
    """Every XLM-R weight present, nothing else (a strict load, with a readable message)."""
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise MultilingualLoadError(
            f"the checkpoint in {folder} does not match XLM-RoBERTa: "
            f"{len(missing)} tensors missing ({', '.join('transformer.' + k for k in missing[:5])}), "
            f"{len(unexpected)} unexpected ({', '.join('transformer.' + k for k in unexpected[:5])})"
        )


def _load_tokenizer(folder: Path) -> Any:
    """The tokenizer exactly as tokenizer.json describes it, read by `tokenizers` (what transformers'
    fast tokenizer ran in 2022). Not through transformers 5: AutoTokenizer trips on config.json's
    model type, XLMRobertaTokenizer rebuilds the pipeline and holds about 130 MB more for the same
    250,002 pieces, and without the file it silently returns 5 tokens that turn every word into <unk>."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise MultilingualLoadError(
            f"no tokenizer files in {folder}: M-CLIP needs its tokenizer.json beside the weights "
            "(without it transformers would build a 5-token tokenizer that turns every word into <unk>)"
        )
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:
        raise MultilingualLoadError(f"cannot read the tokenizer {path}: {err}") from err


def _check_tokenizer(tokenizer: Any, xlmr: Any, folder: Path) -> None:
    """The tokenizer belongs to the model: same vocabulary and padding id, each text wrapped in
    <s> ... </s> (the published pooling averages over them too), real words known."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != xlmr.vocab_size:
        raise MultilingualLoadError(
            f"the tokenizer in {folder} has {size} tokens but the model's embedding has "
            f"{xlmr.vocab_size}: they do not belong together (or tokenizer.json is not XLM-R's)"
        )
    specials = [tokenizer.token_to_id(token) for token in ("<s>", "<pad>", "</s>", "<unk>")]
    if specials != [xlmr.bos_token_id, xlmr.pad_token_id, xlmr.eos_token_id, 3]:
        raise MultilingualLoadError(
            f"the tokenizer in {folder} numbers <s>, <pad>, </s>, <unk> as {specials}, XLM-R as [0, 1, 2, 3]"
        )
    if tokenizer.encode("").ids != [xlmr.bos_token_id, xlmr.eos_token_id]:
        raise MultilingualLoadError(f"the tokenizer in {folder} does not wrap each text in <s> ... </s>")
    probe = tokenizer.encode("photo фото", add_special_tokens=False).ids
    if not probe or all(token == specials[3] for token in probe):
        raise MultilingualLoadError(f"the tokenizer in {folder} maps every word to <unk>")


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
