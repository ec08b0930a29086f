"""Replicate image and image-to-video providers, driven by the model registry."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageOps

from video_assets.media.ffmpeg_bin import run_ffmpeg
from video_assets.providers.registry import ModelSpec, registry
from video_assets.providers.replicate_api import ReplicateRunner, data_uri
from video_assets.schemas import ASPECT_SIZES, CallRecord, Scene, Style


def aspect_of(size: tuple[int, int]) -> str:
    for aspect, wh in ASPECT_SIZES.items():
        if tuple(wh) == tuple(size):
            return aspect
    return "9:16" if size[1] > size[0] else "16:9" if size[0] > size[1] else "1:1"


def styled_prompt(scene: Scene, style: Style) -> str:
    palette = " ".join(style.palette_hex[:4])
    return ", ".join([scene.prompt, f"{style.lighting} lighting", f"{style.mood} mood",
                      f"colour palette {palette}", "cinematic, no text, no watermark"])


class ReplicateImages:
    """Text-to-image (e.g. FLUX schnell/dev); the result is fitted to the job's exact size."""

    name = "replicate"
    paid = True

    def __init__(self, model: str, runner: ReplicateRunner) -> None:
        self.spec: ModelSpec = registry().get(model, "image")
        self.model, self.version, self.unit = model, "1", self.spec.unit
        self.runner = runner

    def estimate_usd(self, n_images: int) -> float:
        return self.spec.cost_usd(n_images)

    def render(self, scene: Scene, style: Style, size: tuple[int, int], out_path: Path,
               new_row: Callable[[], CallRecord]) -> None:
        field = self.spec.inputs
        inputs = {field["prompt"]: styled_prompt(scene, style),
                  field["aspect_ratio"]: aspect_of(size), field["seed"]: scene.seed,
                  **self.spec.fixed_inputs}
        raw = out_path.with_name(out_path.stem + ".download")
        self.runner.run(self.spec, inputs, 1, raw, new_row)
        with Image.open(raw) as im:
            ImageOps.fit(im.convert("RGB"), size, Image.Resampling.LANCZOS).save(out_path)
        raw.unlink()


class ReplicateVideo:
    """Image-to-video (e.g. Kling, Hailuo, Wan, Veo) at the model's allowed lengths. It is sent
    the image, the prompt with the camera move and motion, and the length: never the beats."""

    name = "replicate"
    paid = True
    receives_beats = False

    def __init__(self, model: str, runner: ReplicateRunner) -> None:
        self.spec: ModelSpec = registry().get(model, "video")
        self.model, self.version, self.unit = model, "1", self.spec.unit
        self.allowed_durations_s = tuple(float(d) for d in self.spec.durations_s)
        self.runner = runner

    def estimate_usd(self, durations_s: Sequence[float]) -> float:
        return self.spec.cost_usd(sum(durations_s))

    def output_size(self, target_size: tuple[int, int]) -> tuple[int, int]:
        w, h = target_size
        scale = 720 / min(w, h)
        return int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2

    def generate(self, image_path: Path, scene: Scene, duration_s: float,
                 beats_s: Sequence[float], size: tuple[int, int], out_path: Path,
                 new_row: Callable[[], CallRecord]) -> None:
        field = self.spec.inputs
        camera = scene.camera.replace("_", " ")
        inputs = {field["prompt"]: f"{scene.prompt}, {camera} camera move, {scene.motion}",
                  field["image"]: data_uri(image_path), **self.spec.fixed_inputs}
        if "duration" in field:
            inputs[field["duration"]] = int(duration_s)
        raw = out_path.with_name(out_path.stem + ".download.mp4")
        self.runner.run(self.spec, inputs, duration_s, raw, new_row)
        normalise_clip(raw, size, out_path, f"normalising {self.model}'s clip")
        raw.unlink()


def normalise_clip(raw: Path, size: tuple[int, int], out_path: Path, what: str) -> None:
    """One pass: the model's size and frame rate -> the clip size at 30 fps (video only)."""
    w, h = size
    run_ffmpeg(["-y", "-i", str(raw), "-an", "-vf",
                f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},fps=30",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                str(out_path)], what=what)


class ReplicateMusic:
    """Text-to-music (``meta/musicgen``) for ads without a song: exactly ``duration_s`` of audio
    (looped if the model returns less, trimmed if more)."""

    name = "replicate"
    paid = True

    def __init__(self, model: str, runner: ReplicateRunner) -> None:
        self.spec: ModelSpec = registry().get(model, "music")
        self.model, self.version, self.unit = model, "1", self.spec.unit
        self.runner = runner

    def units(self, duration_s: float) -> int:
        return int(math.ceil(duration_s - 1e-6))

    def estimate_usd(self, duration_s: float) -> float:
        return self.spec.cost_usd(self.units(duration_s))

    def compose(self, prompt: str, duration_s: float, out_path: Path,
                new_row: Callable[[], CallRecord]) -> None:
        field = self.spec.inputs
        units = self.units(duration_s)
        inputs = {field["prompt"]: prompt, field["duration"]: units, **self.spec.fixed_inputs}
        raw = out_path.with_name(out_path.stem + ".download")
        self.runner.run(self.spec, inputs, units, raw, new_row)
        run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(raw), "-t", f"{duration_s:.6f}",
                    "-vn", "-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le", str(out_path)],
                   what=f"fitting {self.model}'s music to {duration_s:.2f} s")
        raw.unlink()


class ReplicateLipsync:
    """Lip-sync (``sync/lipsync-2-pro``): a clip's mouths moved to the song's words. The audio is
    the song from the clip's first frame on the timeline (the sum of the earlier scenes' lengths,
    less the transition lead-in)."""

    name = "replicate"
    paid = True

    def __init__(self, model: str, runner: ReplicateRunner) -> None:
        self.spec: ModelSpec = registry().get(model, "lipsync")
        self.model, self.version, self.unit = model, "1", self.spec.unit
        self.runner = runner

    def estimate_usd(self, durations_s: Sequence[float]) -> float:
        return self.spec.cost_usd(sum(durations_s))

    def sync(self, clip_path: Path, audio_path: Path, duration_s: float, size: tuple[int, int],
             out_path: Path, new_row: Callable[[], CallRecord]) -> None:
        field = self.spec.inputs
        inputs = {field["video"]: data_uri(clip_path, "video/mp4"),
                  field["audio"]: data_uri(audio_path, "audio/wav"), **self.spec.fixed_inputs}
        raw = out_path.with_name(out_path.stem + ".lipsync.mp4")
        self.runner.run(self.spec, inputs, duration_s, raw, new_row)
        normalise_clip(raw, size, out_path, f"normalising {self.model}'s clip")
        raw.unlink()
