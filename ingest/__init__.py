"""The ingest job: photos become CLIP vectors with zero-shot classes in Qdrant (`python -m ingest`)."""
