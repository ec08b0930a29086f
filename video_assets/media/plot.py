"""Beat-grid plot: song sections, waveform envelope, beats, downbeats and clip boundaries, drawn
with Pillow.

Drawn directly rather than with matplotlib, whose import (pyplot pulls in mplot3d) cost 0.8 s
of every render's start-up for one picture.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from video_assets.media.art import font
from video_assets.media.audio import DecodedAudio
from video_assets.schemas import BeatGrid

SIZE_PX = (1200, 360)
ENVELOPE, BEAT, DOWNBEAT, BOUNDARY = "#8aa4c8", "#444444", "#d62728", "#ff7f0e"
AXIS, TEXT = "#222222", "#111111"
# a pale band per section label (behind the envelope), named at the band's top left
SECTION_COLOURS = {"intro": "#e8eef7", "verse": "#dcefdc", "chorus": "#fde0c5", "bridge": "#e9def5",
                   "break": "#eeeeee", "drop": "#f9d0d0", "outro": "#e3eef2"}


def tick_step_s(duration_s: float, max_ticks: int = 12) -> float:
    """The smallest of 1-2-5 steps (seconds) that puts at most ``max_ticks`` ticks on the axis."""
    for decade in (0.1, 1.0, 10.0, 100.0):
        for m in (1, 2, 5):
            if duration_s / (m * decade) <= max_ticks:
                return m * decade
    return 1000.0


def plot_beat_grid(audio: DecodedAudio, grid: BeatGrid, out_path: str | Path) -> None:
    """Write a 1200x360 PNG of the grid over the waveform envelope: the song's sections as
    labelled bands behind it, beats as ticks along the bottom, downbeats along the top, clip
    boundaries as full-height lines, seconds on the axis."""
    width, height = SIZE_PX
    left, right, top, bottom = 20, width - 20, 44, height - 44  # the plot area, pixels
    img = Image.new("RGB", SIZE_PX, "white")
    draw = ImageDraw.Draw(img)
    duration_s = max(grid.duration_s, 1e-6)

    def x_of(t_s: float) -> float:
        return left + (right - left) * min(max(t_s / duration_s, 0.0), 1.0)

    def y_of(v: float) -> float:  # v in -1.1..1.1, up is positive
        return top + (bottom - top) * (1.1 - v) / 2.2

    for section in grid.sections:
        draw.rectangle([x_of(section.start_s), top, x_of(section.end_s), bottom],
                       fill=SECTION_COLOURS[section.label])
    y = np.abs(audio.samples)
    columns = right - left
    if len(y):
        edges = np.linspace(0, len(y), columns + 1).astype(np.int64)
        env = np.maximum.reduceat(y, np.minimum(edges[:-1], len(y) - 1))
        env = np.minimum(env, 1.0)
        xs = np.arange(columns) + left
        upper = [(float(x), y_of(float(e))) for x, e in zip(xs, env, strict=True)]
        lower = [(float(x), y_of(-float(e))) for x, e in zip(xs[::-1], env[::-1], strict=True)]
        draw.polygon(upper + lower, fill=ENVELOPE)
    for t in grid.beats_s:
        draw.line([(x_of(t), y_of(-1.05)), (x_of(t), y_of(-0.85))], fill=BEAT, width=1)
    for t in grid.downbeats_s:
        draw.line([(x_of(t), y_of(0.85)), (x_of(t), y_of(1.05))], fill=DOWNBEAT, width=2)
    for b in grid.boundaries[1:]:
        draw.line([(x_of(b.start_s), y_of(1.05)), (x_of(b.start_s), y_of(-1.05))],
                  fill=BOUNDARY, width=2)
    section_font = font(12)  # names on top of the envelope: "chorus 0.92" (label, energy)
    for section in grid.sections:
        x0, x1 = x_of(section.start_s), x_of(section.end_s)
        for name in (f"{section.label} {section.energy:.2f}", section.label):
            text_w = draw.textlength(name, font=section_font)
            if text_w + 8 <= x1 - x0:
                draw.rectangle([x0 + 2, top + 2, x0 + 6 + text_w, top + 17],
                               fill=SECTION_COLOURS[section.label])
                draw.text((x0 + 4, top + 4), name, fill=TEXT, font=section_font, anchor="lt")
                break

    draw.rectangle([left, top, right, bottom], outline=AXIS, width=1)
    label = font(13)
    step = tick_step_s(duration_s)
    for k in range(int(math.floor(duration_s / step + 1e-9)) + 1):
        t = k * step
        x = x_of(t)
        draw.line([(x, bottom), (x, bottom + 5)], fill=AXIS, width=1)
        draw.text((x, bottom + 7), f"{t:g}", fill=TEXT, font=label, anchor="mt")
    draw.text(((left + right) / 2, height - 4), "seconds", fill=TEXT, font=label, anchor="mb")
    title = (f"{grid.tempo_bpm:.1f} BPM ({grid.method}, confidence {grid.confidence:.2f}), "
             f"{len(grid.boundaries)} clips"
             + (f", {len(grid.sections)} sections" if grid.sections else ""))
    draw.text(((left + right) / 2, top - 10), title, fill=TEXT, font=font(16), anchor="mb")

    legend = font(12)  # swatch and name, right-aligned above the plot, level with the title
    x = right - 8
    for name, colour in (("clip boundaries", BOUNDARY), ("downbeats", DOWNBEAT),
                         ("beats", BEAT)):
        text_w = draw.textlength(name, font=legend)
        draw.text((x, top - 16), name, fill=TEXT, font=legend, anchor="rm")
        x -= text_w + 6
        draw.line([(x - 16, top - 16), (x, top - 16)], fill=colour, width=3)
        x -= 16 + 14
    img.save(out_path, format="PNG")
