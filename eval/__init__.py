"""Measuring the answers (bench measures speed) on the user's own labelled photos (`make eval`).

`python -m eval` (`__main__`): `inputs` reads what to measure on, `collection` fills the eval's own shards
(library vectors borrowed by content hash, the rest encoded), `run` measures one precision through
`measure` (the product's `SearchService` over those shards), `summary` sets precisions side by side, and
`published` is the latest report as the API serves it.
`recall` (recall against FAISS flat, shared with bench) and `crosscheck` (`make crosscheck`); the pure
parts: `metrics` (classification measures), `ranking` (retrieval measures), `revisited` (the revisited
Oxford/Paris protocol), `threshold` (the "none of these" fit), `prompts` (ensemble against single
prompts), the report sections (`classification`, `retrieval`), the readers (`labelled`, `queries`,
`revisited_data`) and the report (`report`, `charts`).
"""
