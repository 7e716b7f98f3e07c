"""Ingestion: files (or records) in, a new live index version out.

Public surface: `ingest.pipeline` — `ingest(settings, IngestRequest(...))`, `ingest_records`, `remove_documents`,
`JobReport`, `Progress`, `JobAlreadyRunning`; `ingest.admin` — `list_documents`, `show_document`, `list_jobs`.
`ingest.parse` and `ingest.chunk` are its steps (`parse_bytes`, `chunk_document`), importable on their own.
"""
