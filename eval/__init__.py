"""Measuring the answers (bench measures speed): recall against exact search, the FAISS cross-check."""
