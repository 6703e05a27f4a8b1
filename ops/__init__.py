"""Running Wonders for months: backups that restore (`ops.backup`, `ops.restore`) and re-indexing with
another model without downtime (`ops.reindex`), run here or handed to the running service (`ops.jobs`)."""
