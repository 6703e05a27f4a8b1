"""Exact rewrites of CLIP that make it faster and keep its function: each module proves its exactness
in its docstring, and its installer refuses a model it was not written for. Only `core.model.clip`
applies them; they import transformers internals at their top, so import them only when loading."""
