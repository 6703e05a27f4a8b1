"""A model that cannot be loaded because the Hugging Face hub is out of reach: one clear paragraph.

Every model the product loads (CLIP, and any further text tower) wraps its loading in
`explained_hub_errors(model, setting)`: a failure to reach the hub, or a name that is neither a cached
model nor a local folder, becomes `ModelUnavailable` with what failed, the setting that points to a
local folder, and how to download the model beforehand. The service and the CLIs print that message
alone (no traceback) and exit non-zero."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ModelUnavailable(RuntimeError):
    """The model could not be loaded from the cache, a folder or the hub; the message says what to do."""


def _looks_like_a_folder(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().is_absolute()


def explain(model: str, setting: str, err: BaseException) -> str:
    """The paragraph for a model that could not be found or fetched."""
    if _looks_like_a_folder(model):
        return (
            f"Could not load the model '{model}' ({setting}): there is no such folder. Set {setting} to a "
            "folder that holds a saved model (`SentenceTransformer(name).save(folder)`), or to a model "
            "name on the Hugging Face hub such as openai/clip-vit-large-patch14."
        )
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    return (
        f"Could not load the model '{model}' ({setting}): it is not in the local Hugging Face cache and "
        f"the hub could not be reached or does not know it ({type(err).__name__}: {reason}). "
        f"Either set {setting} to a local folder that holds the model, or download it once on a machine "
        'that can reach huggingface.co: `.venv/bin/python -c "from sentence_transformers import '
        f"SentenceTransformer; SentenceTransformer('{model}')\"` fills the cache (~/.cache/huggingface, "
        "or HF_HOME), which you can copy here; "
        f"`SentenceTransformer('{model}').save('models/clip')` writes a folder for {setting}=models/clip."
    )


def _hub_failure(model: str, err: BaseException) -> bool:
    """Whether the error is one of reaching or resolving the model on the hub (not a broken folder)."""
    if Path(model).expanduser().is_dir():
        return False
    try:
        import requests

        network: tuple[type[BaseException], ...] = (requests.RequestException,)
    except ImportError:  # pragma: no cover - requests is a dependency of the hub client
        network = ()
    return isinstance(err, (OSError, ValueError, *network))


@contextmanager
def explained_hub_errors(model: str, setting: str) -> Iterator[None]:
    """Turn a hub failure while loading `model` into ModelUnavailable (other errors pass unchanged)."""
    try:
        yield
    except ModelUnavailable:
        raise
    except Exception as err:
        if _hub_failure(model, err):
            raise ModelUnavailable(explain(model, setting, err)) from err
        raise
