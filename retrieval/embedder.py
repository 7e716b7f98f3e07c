"""The sentence embedder: all-MiniLM-L6-v2 from its package on the index, never from a model hub.

Two backends give the same vectors (cosine >= 0.99, tests/test_encoder.py): int8 ONNX run by onnxruntime, the
default, about 3x cheaper per passage than torch and without torch's import; and torch through
sentence-transformers (PENNY_EMBED_BACKEND=torch). Every cached embedding is keyed by `Embedder.cache_key`, which
names the backend's variant, so switching backends re-embeds instead of mixing vector spaces.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from penny import Settings
from retrieval.model_files import resolve_model_path


def embedding_key(settings: Settings) -> str:
    """What the embeddings table and index manifests call this model and variant. torch keeps the bare model name
    (what every cache held before the ONNX variant existed)."""
    if settings.embed_backend == "torch":
        return settings.embedding_model
    return f"{settings.embedding_model}@{settings.embed_backend}"


def load_tokenizer(model_name: str):
    """The model's own tokenizer (its tokenizer.json) alone: chunk sizes are measured with it, and it loads in
    milliseconds, without transformers or torch."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(resolve_model_path(model_name) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(tokenizer, texts: list[str]) -> list[int]:
    return [len(encoding.ids) for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]


class Embedder:
    """Batch embedding of passages and queries into unit vectors (so inner product is cosine similarity)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_name = settings.embedding_model
        self.backend = settings.embed_backend
        self.cache_key = embedding_key(settings)
        self.batch_size = settings.embed_batch_size
        self.threads = settings.embed_thread_count
        # One short text (a query) is embedded on fewer threads: on 2 shared cores a 2-thread forward pass of a
        # short query collapses when another process is busy (measured in eval/bench_retrieval.py).
        self.single_threads = settings.search_threads
        self._turn = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False

    @cached_property
    def model(self) -> _TorchEncoder | _OnnxEncoder:
        if self.backend == "torch":
            return _TorchEncoder(resolve_model_path(self.model_name), self.threads)
        from retrieval.onnx_model import load_onnx_model

        return _OnnxEncoder(load_onnx_model(self.settings), self.batch_size)

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.model_name)

    @property
    def dimension(self) -> int:
        return self.model.dimension

    @property
    def max_tokens(self) -> int:
        return self.model.max_tokens

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
        texts = [text for request in batch for text in request.texts]
        try:
            # torch splits every op of a pass across its threads: worth it for a full batch (ingestion), but a few
            # short texts on 2 threads collapse when another process holds a core. ONNX runs whole texts side by
            # side with no barrier between them, so any several texts (answer sentences) may use every core.
            many = len(texts) >= self.batch_size or (self.backend != "torch" and len(texts) > 1)
            threads = self.threads if many else self.single_threads
            vectors = self.model.encode(texts, self.batch_size, threads)
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


class _TorchEncoder:
    """sentence-transformers on torch: the reference the ONNX export is checked against."""

    def __init__(self, folder: Path, threads: int) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
        torch.set_num_threads(threads)
        self._torch = torch
        self.model = SentenceTransformer(str(folder), device="cpu")
        self.dimension = self.model.get_embedding_dimension()
        self.max_tokens = self.model.max_seq_length

    def encode(self, texts: list[str], batch_size: int, threads: int) -> np.ndarray:
        self._torch.set_num_threads(threads)
        vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


class _OnnxEncoder:
    """The int8 ONNX export on onnxruntime: the model's tokenizer, mean pooling over real tokens, unit length."""

    def __init__(self, model, batch_size: int) -> None:
        from tokenizers import Tokenizer

        self.model = model
        self.dimension = model.dimension
        self.max_tokens = model.max_tokens
        self.tokenizer = Tokenizer.from_file(str(model.tokenizer_file))
        self.tokenizer.enable_truncation(max_length=model.max_tokens)
        self.tokenizer.no_padding()  # tokenizer.json pads to a fixed length; each text runs alone, unpadded
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()

    @cached_property
    def session(self):
        """One single-threaded session, made on first use: `encode` runs texts side by side on it."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(str(self.model.model_file), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int, threads: int) -> np.ndarray:
        """Each text runs alone. Dynamic int8 quantization scales activations per run, so a text batched with
        others (and their padding) got a vector differing from its own (cosine ~0.985): a query searched alone
        and in `search_many` ranked differently. Alone it is also cheaper here, with no padding to compute
        (28 against 78 CPU-ms per handbook paragraph, 1 thread, in one run); `batch_size` is torch's.

        With several threads, texts run side by side, each on one thread, rather than one text split across
        threads: one ~200-token text kept two intra-op threads only ~60 % busy (a full OCP ingest ran on 1.16
        of 2 cores), while onnxruntime releases the GIL during a run, so parallel texts fill every core."""
        encodings = self.tokenizer.encode_batch(texts)
        self.session  # noqa: B018  (made here, once, not by threads racing to make it)
        if threads <= 1 or len(encodings) == 1:
            return np.stack([self._vector(encoding) for encoding in encodings])
        # longest first, so that no thread is left with a long text when the others are done
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        vectors = np.empty((len(encodings), self.dimension), dtype=np.float32)
        for i, vector in zip(order, self._pool(threads).map(self._vector, [encodings[i] for i in order]), strict=True):
            vectors[i] = vector
        return vectors

    def _pool(self, threads: int) -> ThreadPoolExecutor:
        """The threads that run texts side by side, kept: an answer's few sentences are embedded in ~10 ms, and
        starting threads for each call was a visible part of it."""
        with self._pools_lock:
            if threads not in self._pools:
                self._pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="penny-embed")
            return self._pools[threads]

    def _vector(self, encoding) -> np.ndarray:
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        pooled = self.session.run(None, inputs)[0][0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


@dataclass
class _Request:
    texts: list[str]
    vectors: np.ndarray | None = None
    error: BaseException | None = None


_shared: dict[tuple, Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """One embedder per model, variant and thread count per process: the model is loaded once."""
    key = (
        settings.embedding_model,
        settings.embed_backend,
        str(settings.models_dir),
        settings.embed_thread_count,
        settings.search_threads,
        settings.embed_batch_size,
    )
    if key not in _shared:
        _shared[key] = Embedder(settings)
    return _shared[key]
