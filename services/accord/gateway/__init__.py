"""The HTTP ingest gateway: partners POST JSON batches with their own API token."""
