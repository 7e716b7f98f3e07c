"""The candidate rows of one query with both rankers' scores: what search gathers and fusion and confidence read."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Candidates:
    rows: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    dense_rank: dict[int, int] = field(default_factory=dict)
    bm25_rank: dict[int, int] = field(default_factory=dict)
