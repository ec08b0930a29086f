"""The MoviePy 2.x baseline: the edit ``final_video`` makes, composed the way comparable tools do.

Runs in its own environment (``benchmarks/moviepy_env``; MoviePy pins pillow below the product's),
so it imports nothing from ``video_assets``: ``python moviepy_compose.py SPEC.json`` reads the same
spec as ``benchmarks.child_compose`` (clips, frame-exact segments, audio, output settings) and
prints ``{"wall_s": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from moviepy import AudioFileClip, CompositeVideoClip, VideoFileClip, vfx


def build(spec: dict):
    s = spec["settings"]
    fps, width, height = s["fps"], s["width"], s["height"]
    layers = []
    for path, seg in zip(spec["clip_paths"], spec["segments"], strict=True):
        need_s = seg["n_frames"] / fps
        clip = VideoFileClip(path, audio=False)
        if clip.duration < need_s:
            clip = clip.with_effects([vfx.Loop(duration=need_s)])
        clip = clip.subclipped(0, need_s)
        scale = max(width / clip.w, height / clip.h)  # cover, then centre crop (as ffmpeg does)
        clip = clip.with_effects([vfx.Resize(scale)])
        clip = clip.with_effects([vfx.Crop(x_center=clip.w / 2, y_center=clip.h / 2,
                                           width=width, height=height)])
        effects = []
        if seg["fade_in_frames"]:
            effects.append(vfx.FadeIn(seg["fade_in_frames"] / fps))
        if seg["fade_out_frames"]:
            effects.append(vfx.FadeOut(seg["fade_out_frames"] / fps))
        if seg["transition_in"] == "crossfade" and seg["half_in_frames"]:
            effects.append(vfx.CrossFadeIn(2 * seg["half_in_frames"] / fps))
        if effects:
            clip = clip.with_effects(effects)
        layers.append(clip.with_start(seg["start_frame"] / fps))
    total_frames = spec["segments"][-1]["cut_out_frame"]
    video = CompositeVideoClip(layers, size=(width, height)).with_duration(total_frames / fps)
    return video.with_audio(AudioFileClip(spec["audio_path"]))


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    s = spec["settings"]
    started = time.perf_counter()
    video = build(spec)
    video.write_videofile(
        spec["out_path"], fps=s["fps"], codec="libx264", preset=s["preset"],
        ffmpeg_params=["-crf", str(s["crf"]), "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
        audio_codec="aac", audio_bitrate=s["audio_bitrate"], audio_fps=48000, logger=None,
    )
    print(json.dumps({"wall_s": time.perf_counter() - started}))


if __name__ == "__main__":
    main(sys.argv[1])
