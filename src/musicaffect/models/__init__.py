"""Neural networks: backbones found through one registry, wrapped with task heads.

>>> from musicaffect.models import build_model
>>> model = build_model("lstm", {"bidirectional": True}, n_features=128, tasks={"genre": 10})
>>> out = model(x, lengths)   # {"embedding": (B, D), "genre": (B, 10) logits}

Registered backbones: ``lstm`` (the lab's LSTM), ``cnn`` (the lab's 2D CNN), ``cnn_res``
(a compact residual CNN with frequency-aware pooling), ``cnn_short`` (a short-chunk residual
CNN for excerpt training) and ``crnn`` (conv front-end + GRU/LSTM over time).
"""

from musicaffect.models.registry import (  # isort: skip
    available_models,
    build_backbone,
    build_model,
    model_defaults,
    parse_config,
    register_backbone,
)
from musicaffect.models.base import MusicModel, is_exporting  # isort: skip
from musicaffect.models import cnn, cnn_res, cnn_short, crnn, lstm, musicnn  # noqa: F401  (registers them)

__all__ = [
    "MusicModel",
    "available_models",
    "build_backbone",
    "build_model",
    "is_exporting",
    "model_defaults",
    "parse_config",
    "register_backbone",
]
