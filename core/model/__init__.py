"""The model runtime: the CLIP towers and the multilingual text tower, run on the one model thread."""
