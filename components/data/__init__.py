"""The data stage: embedded default dataset (synth), ingestion with quarantine (ingest), validation (validate)."""
