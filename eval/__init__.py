"""Measuring the answers (bench measures speed) on the user's own labelled photos (`make eval`).

`recall` (recall against FAISS flat, shared with bench) and `crosscheck` (`make crosscheck`); the pure
parts: `metrics` (classification measures), `ranking` (retrieval measures), `revisited` (the revisited
Oxford/Paris protocol), `threshold` (the "none of these" fit), `prompts` (ensemble against single
prompts), the report sections (`classification`, `retrieval`), the readers (`labelled`, `queries`,
`revisited_data`) and the report (`report`, `charts`).
"""
