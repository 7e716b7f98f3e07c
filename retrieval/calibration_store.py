"""A version's fusion calibration as stored beside it (calibration.json) and as search applies it.

Measuring it (retrieval/calibration.py) runs search itself, so what search reads lives here, below both: the record,
its file, and the fusion a version is searched with.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from penny import Settings
from retrieval.fusion import FusionMethod

FILE_NAME = "calibration.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """What calibrating one index version found. `dense_shift` is what search applies; the rest says why, on what
    and at what cost."""

    dense_shift: float
    pseudo_queries: int
    mrr_configured: float  # MRR@10 on the pseudo-queries with the configured weights
    mrr_calibrated: float  # ... with the chosen shift
    mrr_dense: float  # ... dense alone
    mrr_bm25: float  # ... BM25 alone
    mrr_by_shift: dict[str, float]
    texts_embedded: int  # each pseudo-query and its row's text without the sentence
    embed_seconds: float
    seconds: float
    reason: str
    version: int  # the index version whose pseudo-queries measured it
    rows: int  # that version's live rows
    changed_since: int  # live rows added or removed by the later versions that kept it (0: measured on this one)
    measured_with: dict  # the build and fusion settings it was measured under: other ones measure it again

    def apply(self, method: FusionMethod) -> FusionMethod:
        return method.shifted(self.dense_shift)


def save_calibration(folder: Path, calibration: Calibration) -> None:
    """Written under a temporary name and renamed: a reader sees the whole file or none (the configured weights)."""
    staging = folder / f".{FILE_NAME}.tmp"
    staging.write_text(json.dumps({"format": FORMAT_VERSION, **asdict(calibration)}, indent=2))
    os.replace(staging, folder / FILE_NAME)


def load_calibration(folder: Path) -> Calibration | None:
    """The version's calibration, or None when it has none (calibration was off, or an older Penny wrote it)."""
    path = folder / FILE_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none, or unreadable: search keeps the configured weights
        return None
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT_VERSION:
        return None
    if set(data) != {field.name for field in fields(Calibration)}:
        return None  # another format: search keeps the configured weights rather than guess
    return Calibration(**data)


def fusion_for_version(settings: Settings, folder: Path) -> FusionMethod:
    """The fusion search uses on the version in `folder`: the configured one, shifted by the version's
    calibration unless calibration is switched off."""
    method = FusionMethod.from_settings(settings)
    calibration = load_calibration(folder) if settings.fusion_calibration and method.kind == "convex" else None
    return calibration.apply(method) if calibration else method
