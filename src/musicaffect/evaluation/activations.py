"""Activation maps of a CNN run (lab step 7a): what each convolutional block outputs for one
test clip. ``musicaffect activations RUN DATA_ROOT`` draws them; the lab's report shows them
for its lab CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicaffect.errors import MusicAffectError


def activation_maps(run, data_root, *, clip: int = 0, device: str = "cpu"
                    ) -> tuple[list[np.ndarray], str, str]:
    """The output of every convolutional block of a CNN run for one test clip of the genre
    folder (at the run's rate and view), through the one inference path.

    Returns ``(maps, clip id, run name)``; ``maps[k]`` is block ``k``'s output as
    (channels, frequency, time). Raises :class:`MusicAffectError` when the run is not one
    deep model with convolutional blocks (``backbone.blocks``).
    """
    import torch

    from musicaffect.evaluation.predictor import Predictor

    pred = Predictor.load([run], device=device)
    member = pred.first
    cfg = member.cfg
    blocks = getattr(getattr(member, "model", None), "backbone", None)
    blocks = getattr(blocks, "blocks", None)
    if blocks is None or len(pred.members) != 1:
        raise MusicAffectError(f"{run}: model {cfg.model.name} has no convolutional blocks")
    model = member.model
    ds = pred.dataset(member, data_root, dataset="genre", split="test")
    if not 0 <= clip < len(ds):
        raise MusicAffectError(f"{data_root}: the test folder has {len(ds)} clips; "
                               f"choose a clip index below that")
    item = ds[clip]
    maps: list[np.ndarray] = []

    def keep(module, inputs, output) -> None:
        h = output[0] if isinstance(output, tuple) else output        # (1, C, T, F)
        maps.append(h[0].detach().transpose(1, 2).cpu().numpy())     # (C, F, T)

    hooks = [b.register_forward_hook(keep) for b in blocks]
    try:
        with torch.no_grad():
            x = item["x"][None]
            model(x if member.device is None else x.to(member.device),
                  torch.tensor([item["length"]]))
    finally:
        for h in hooks:
            h.remove()
    return maps, str(item["id"]), cfg.name


def activation_figure(run, data_root, path: Path, *, clip: int = 0) -> Path:
    """Save the activation maps of every block of a CNN run for test clip ``clip``."""
    import matplotlib.pyplot as plt

    from musicaffect.evaluation.plots import plot_activation_maps

    path = Path(path)
    maps, clip_id, name = activation_maps(run, data_root, clip=clip)
    fig = plot_activation_maps(maps, title=f"{name}: clip {clip_id}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
