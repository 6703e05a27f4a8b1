"""The model runtime: device and precision choice, loading CLIP with its exact rewrites, the model thread."""
