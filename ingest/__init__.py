"""Ingestion: files (or records) in, a new live index version out.

Public surface, imported from its module (nothing is imported here: commands that never ingest never load the
parsers):
- `ingest.pipeline`: `ingest(settings, IngestRequest(...))`, `validate_request`, `PathNotAllowed`;
- `ingest.records`: `ingest_records`, `Record`, `record_path` (text passages, for eval);
- `ingest.remove`: `remove_documents`;
- `ingest.job`: `JobReport`, `Progress`, `JobAlreadyRunning`, `job_lock`;
- `ingest.admin`: `list_documents`, `show_document`, `list_jobs`, `mark_dead_jobs`.
The job's steps, importable on their own: `ingest.scan` (`examine` -> one `FileChange` per file), `ingest.parse`
and `ingest.chunk` (`parse_bytes`, `chunk_document`), `ingest.parallel` (`parse_files`), `ingest.store`
(`Plan`, `write_plan`) and `ingest.publish` (embedding and publishing: the seam into retrieval's index writing).
"""
