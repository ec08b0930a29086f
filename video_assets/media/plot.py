"""Beat-grid plot: waveform envelope, beats, downbeats and clip boundaries (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from video_assets.media.audio import DecodedAudio  # noqa: E402
from video_assets.schemas import BeatGrid  # noqa: E402


def plot_beat_grid(audio: DecodedAudio, grid: BeatGrid, out_path: str | Path) -> None:
    """Write a 1200x360 PNG of the grid over the waveform envelope."""
    y = audio.samples
    step = max(1, len(y) // 4000)
    n = len(y) // step * step
    env = np.abs(y[:n]).reshape(-1, step).max(axis=1)
    t = np.arange(len(env)) * step / audio.sample_rate
    fig, ax = plt.subplots(figsize=(12, 3.6), dpi=100)
    ax.fill_between(t, -env, env, color="#8aa4c8", linewidth=0)
    ax.vlines(grid.beats_s, -1.05, -0.85, color="#444444", linewidth=0.6, label="beats")
    ax.vlines(grid.downbeats_s, 0.85, 1.05, color="#d62728", linewidth=1.0, label="downbeats")
    edges = [b.start_s for b in grid.boundaries[1:]]
    ax.vlines(edges, -1.05, 1.05, color="#ff7f0e", linewidth=2.0, label="clip boundaries")
    ax.set_xlim(0, grid.duration_s)
    ax.set_ylim(-1.1, 1.1)
    ax.set_yticks([])
    ax.set_xlabel("seconds")
    ax.set_title(f"{grid.tempo_bpm:.1f} BPM ({grid.method}, confidence {grid.confidence:.2f}), "
                 f"{len(grid.boundaries)} clips")
    ax.legend(loc="upper right", fontsize=8, ncols=3)
    fig.tight_layout()
    fig.savefig(out_path, format="png")
    plt.close(fig)
