"""Retrieval: the catalogue and the indexes, and search over them.

Public surface (imported from its module, so that `import retrieval.catalogue` loads no model and no FAISS):
- `retrieval.catalogue`: `Base`, the catalogue's tables (`Document`, `ChunkRow`, `EmbeddingRow`, `IngestionJob`,
  `JobError`, `IndexVersion`), `open_catalogue`, `live_version`, `utcnow`
- `retrieval.search`: `Searcher`, `SearchFilter`, `get_searcher`
- `retrieval.indexer`: `embed_missing`, `publish_version`, `tidy_versions`: how ingest writes an index version (one
  new segment per job); `compact`, `index_status`: `penny index compact` and `penny index status`
- `retrieval.embedder`: `Embedder`, `get_embedder`, `load_tokenizer`
- `retrieval.analysis`: `analyze`, the one text analysis BM25, the cache and eval share
- `retrieval.sentences`, `retrieval.text_layout`: a passage's sentences, lines and tables with their offsets, which
  answers are scored and quoted by and which ingestion embeds ahead of questions
"""
