"""What both the API and the ingest job use: settings, the model runtime (`model/`), stores, classes,
image decoding, ids and thumbnails."""
