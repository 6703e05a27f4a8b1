"""What both the API and the ingest job use: settings, encoder, stores, classes, image decoding."""
