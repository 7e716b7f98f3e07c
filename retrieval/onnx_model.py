"""The embedding model as int8 ONNX: exported once from the packaged weights into the models directory, offline.

Recipe (measured in ../shared/dependencies.md): `torch.onnx.export` of the Hugging Face BertModel, then
`quant_pre_process(skip_symbolic_shape=True)`, then `quantize_dynamic` of the MatMul weights only, per channel.
onnxruntime's default per-tensor quantization is as fast but drops tatqa-dev Recall@10 from 0.583 to 0.559 (cosine
0.93 to torch), so it is not used. Attention is exported in its eager form (plain MatMul and Softmax). The
folder's manifest records the recipe and the model file's sha256; loading checks both, so a half-written or
altered file is rebuilt rather than silently used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from penny import ModelNotFound, Settings
from retrieval.model_files import resolve_model_path

VARIANT = "onnx-int8"
# Bump when the recipe changes: the folder is rebuilt and every embedding made with the old one is re-made.
RECIPE = {
    "format": 1,
    "attention": "eager",
    "opset": 17,
    "weight_type": "QInt8",
    "per_channel": True,
    "op_types": ["MatMul"],
}
_MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class OnnxModel:
    """A checked folder: the quantized model, the tokenizer it was exported with, and the pooling facts."""

    folder: Path
    sha256: str
    dimension: int
    max_tokens: int

    @property
    def model_file(self) -> Path:
        return self.folder / _MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / "tokenizer.json"


def onnx_folder(settings: Settings) -> Path:
    return settings.models_dir / f"{Path(settings.embedding_model).name}-{VARIANT}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_onnx_model(settings: Settings, *, prepare: bool = True) -> OnnxModel:
    """The checked ONNX model for `settings.embedding_model`, made first when missing or not as recorded."""
    folder = onnx_folder(settings)
    model = _checked(folder)
    if model is not None:
        return model
    if not prepare:
        raise ModelNotFound(f"no checked ONNX embedding model in {folder}: run `penny models prepare`")
    return prepare_onnx_model(settings)


def prepare_onnx_model(settings: Settings, *, force: bool = False) -> OnnxModel:
    """Export and quantize the model into the models directory (under a lock: processes may start at once)."""
    folder = onnx_folder(settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        model = None if force else _checked(folder)
        if model is None:
            _build(settings, folder)
            model = _checked(folder)
        if model is None:  # pragma: no cover  (the file we just wrote does not match its own hash)
            raise ModelNotFound(f"the ONNX model written to {folder} does not match its recorded sha256")
        return model


def _checked(folder: Path) -> OnnxModel | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("recipe") != RECIPE or not (folder / _MODEL_FILE).is_file():
        return None
    if file_sha256(folder / _MODEL_FILE) != manifest.get("sha256"):
        return None
    return OnnxModel(folder, manifest["sha256"], manifest["dimension"], manifest["max_tokens"])


def _build(settings: Settings, folder: Path) -> None:
    source = resolve_model_path(settings.embedding_model)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        dimension, max_tokens = _export(source, staging / "fp32.onnx")
        _quantize(staging / "fp32.onnx", staging / _MODEL_FILE)
        (staging / "fp32.onnx").unlink()
        shutil.copy(source / "tokenizer.json", staging / "tokenizer.json")
        manifest = {
            "source": str(source),
            "recipe": RECIPE,
            "sha256": file_sha256(staging / _MODEL_FILE),
            "dimension": dimension,
            "max_tokens": max_tokens,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _export(source: Path, target: Path) -> tuple[int, int]:
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    # eager attention exports to plain MatMul/Softmax that onnxruntime runs ~25 % faster than the SDPA graph
    bert = AutoModel.from_pretrained(str(source), attn_implementation=RECIPE["attention"]).eval()

    class _Positional(torch.nn.Module):  # transformers 5's forward takes keyword arguments only
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    example = torch.ones((2, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes the export fixes on purpose
        torch.onnx.export(
            _Positional(bert),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=RECIPE["opset"],
            dynamo=False,
        )
    config = (
        json.loads((source / "sentence_bert_config.json").read_text())
        if (source / "sentence_bert_config.json").exists()
        else {}
    )
    return int(bert.config.hidden_size), int(config.get("max_seq_length", bert.config.max_position_embeddings))


def _quantize(fp32: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_dynamic(
        str(prepared),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=RECIPE["per_channel"],
        op_types_to_quantize=RECIPE["op_types"],
    )
    prepared.unlink()
