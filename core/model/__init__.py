"""The model runtime: device and precision, loading CLIP with its exact rewrites, the model thread.

    model = load_clip(settings)          # once per process; all torch work runs on one model thread
    model.image.encode_images(photos)    # an ImageTower
    model.text.encode_texts(["a query"]) # a TextTower: another one (multilingual) stands beside it

Rooms: `towers.py` (the tower interfaces, `EncoderIdentity`), `clip.py` (loading CLIP, its two towers),
`model_thread.py` (the one thread and its shared text passes), `device.py` (`auto` device and
precision), `memory.py` (glibc's treatment of freed memory), `rewrites/` (the exact rewrites of CLIP).
Importing this package does not import torch.
"""

from core.model.clip import ClipImageTower, ClipModel, ClipTextTower, load_clip
from core.model.device import cpu_supports_bf16, resolve_device, resolve_precision
from core.model.hub_errors import ModelUnavailable
from core.model.memory import keep_freed_memory, release_freed_memory
from core.model.model_thread import model_thread
from core.model.towers import EncoderIdentity, ImageTower, TextTower

__all__ = [
    "ClipImageTower",
    "ClipModel",
    "ClipTextTower",
    "EncoderIdentity",
    "ImageTower",
    "ModelUnavailable",
    "TextTower",
    "cpu_supports_bf16",
    "keep_freed_memory",
    "load_clip",
    "model_thread",
    "release_freed_memory",
    "resolve_device",
    "resolve_precision",
]
