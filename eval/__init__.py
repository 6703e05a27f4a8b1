"""Evaluation of Wonders' answers on the user's own labelled photos (`make eval`, `python -m eval`).

Pure parts, no search or store here: `metrics` (classification measures), `ranking` (retrieval measures),
`revisited` (the revisited Oxford/Paris protocol), `threshold` (the "none of these" fit), `prompts`
(ensemble against single prompts), the report sections (`classification`, `retrieval`), the readers
(`labelled`, `queries`, `revisited_data`) and the report (`report`, `charts`).
"""
