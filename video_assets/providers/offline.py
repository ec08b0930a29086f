"""Offline providers: a rule-based planner, procedural storyboard cards and animatic clips.

They cost nothing and need no network, but behave like the paid ones: the planner fills the same
``Script`` schema an LLM fills, and the video provider only produces its allowed lengths.

When the beat grid has the song's sections, the plan follows them: the cut into a section takes
its transition from the music (``section_transition``: a hard cut into a chorus, a drop or a big
rise in energy, a crossfade into an intro, a break or a big fall, a fade into the outro; the
flavour's bias and a fixed ``transitions`` choice apply as to every cut), a scene's shot and camera
follow its section's intensity as well as its beats, and the scenes of a repeated section (every
chorus, every verse) share a visual motif in their prompts (``section_motifs``). A grid without
sections is planned as before sections existed.
"""

from __future__ import annotations

import bisect
import colorsys
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from video_assets.media.animatic import render_animatic
from video_assets.media.art import render_card
from video_assets.media.boundaries import section_intensity
from video_assets.providers.base import NewRow
from video_assets.schemas import (
    BeatGrid,
    Character,
    Lyrics,
    Request,
    Scene,
    Script,
    Section,
    Style,
)

# keywords -> palette (sky top, sky bottom, accent, far, near); the first match wins
PALETTES: dict[tuple[str, ...], list[str]] = {
    ("neon", "synthwave"): ["#1a0b3d", "#ff5e8a", "#ffd36e", "#3b1f6b", "#120a24"],
    ("ocean", "sea"): ["#0b2a4a", "#7fd1e0", "#fff2b3", "#1d5f7a", "#0a1f33"],
    ("forest",): ["#0b3d2e", "#8ad1c2", "#f2e86d", "#1f6b4e", "#0a241b"],
    ("desert",): ["#3d1f0b", "#f5a25d", "#fff1c1", "#a0522d", "#40210f"],
    ("sunset", "sunrise"): ["#2b1055", "#f76b1c", "#fad961", "#6b2d5c", "#1f0b2b"],
    ("snow", "winter"): ["#3a4a6b", "#dfe9f5", "#ffffff", "#8fa3c2", "#2b3550"],
    ("night",): ["#05070f", "#1b2a4a", "#c9d6ff", "#14203a", "#03050a"],
    ("space",): ["#000005", "#1a1040", "#9fd3ff", "#241a5a", "#05030f"],
    ("coffee",): ["#2b1a10", "#c08552", "#f3e0c7", "#5e3b22", "#1a0f08"],
}
URBAN_WORDS = ("city", "street", "urban", "neon", "downtown", "skyline", "rooftop", "subway")
FLAVOR_BIAS = {"default": 0.0, "cinematic": -0.2, "energetic": 0.2, "minimal": -0.1}
ARCHETYPES = {
    "music_video": ("journey", ["Opening", "Rising", "Drive", "Peak", "Afterglow"]),
    "ad": ("problem_solution", ["Hook", "Problem", "Turn", "Solution", "Call to action"]),
}
SHOTS = {
    "low": [
        "Wide establishing shot: {setting}, {subject} small against the horizon",
        "Quiet moment: {subject} pauses, the world of {setting} drifting past",
        "Slow reveal of {setting} in soft {lighting}",
    ],
    "mid": [
        "Medium shot: {subject} moving through {setting}",
        "Tracking shot beside {subject}, {setting} streaming behind",
        "Over-the-shoulder view of {subject} taking in {setting}",
    ],
    "high": [
        "Close-up on {subject}, motion blur and {lighting}",
        "Dynamic low angle: {subject} at full speed, {setting} exploding with colour",
        "Whip-fast montage of {subject} and {setting} on the beat",
    ],
}
CAMERAS = {
    "low": ["pull_out", "static", "tilt_up"],
    "mid": ["pan_right", "pan_left", "tilt_down"],
    "high": ["push_in", "pan_left", "push_in"],
}
MOTION = {"low": "slow drift", "mid": "steady movement", "high": "energetic motion on every beat"}
# a visual idea that comes back in every section of a repeated kind (each chorus, each verse)
MOTIFS = [
    "recurring motif: {subject} inside a ring of light",
    "recurring motif: a mirrored reflection of {subject}",
    "recurring motif: paper lanterns rising around {subject}",
    "recurring motif: {subject} silhouetted against a giant circular sun",
    "recurring motif: streaks of light spiralling around {subject}",
    "recurring motif: petals swirling past {subject} in slow arcs",
    "recurring motif: a doorway of light opening in front of {subject}",
]
SECTION_SNAP_S = 2.0  # a cut this close to a section boundary is the cut into that section
BIG_ENERGY_CHANGE = 0.25  # a section this much louder (quieter) than the one before is a rise (fall)
# the energy a cut into a section counts as, for pick_transition: a hard cut, a crossfade, a fade
SECTION_EDGE_ENERGY = {"rise": 0.9, "fall": 0.45, "end": 0.2}


def stable_seed(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def palette_for(text: str, seed: int) -> list[str]:
    lowered = text.lower()
    for words, palette in PALETTES.items():
        if any(re.search(rf"\b{word}\b", lowered) for word in words):
            return list(palette)
    hue = (seed % 360) / 360.0
    out = []
    for dh, light, sat in ((0.0, 0.15, 0.6), (0.06, 0.62, 0.7), (0.14, 0.85, 0.9),
                           (0.0, 0.32, 0.45), (0.0, 0.09, 0.5)):
        r, g, b = colorsys.hls_to_rgb((hue + dh) % 1.0, light, sat)
        out.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return out


def subject_of(prompt: str) -> str:
    """The first "a/an/the <words> <noun>" phrase of the prompt, else a generic protagonist."""
    m = re.search(r"\b(an?|the)\s+((?:[a-z-]+\s+){0,2}[a-z-]+)", prompt.lower())
    if m:
        words = m.group(2).split()
        stop = {"at", "in", "on", "of", "with", "and", "chasing", "under", "through", "into"}
        kept = []
        for w in words:
            if w in stop:
                break
            kept.append(w)
        if kept:
            return f"{m.group(1)} {' '.join(kept)}"
    return "the protagonist"


def level(energy: float, bias: float = 0.0) -> str:
    e = energy + bias
    return "high" if e >= 0.66 else "mid" if e >= 0.33 else "low"


def scene_energy(grid: BeatGrid, start_s: float, end_s: float) -> float:
    vals = [e for t, e in zip(grid.beats_s, grid.beat_energy, strict=False) if start_s <= t < end_s]
    return sum(vals) / len(vals) if vals else 0.5


def boundary_energy(grid: BeatGrid, t_s: float) -> float:
    if not grid.beats_s:
        return 0.5
    i = min(range(len(grid.beats_s)), key=lambda k: abs(grid.beats_s[k] - t_s))
    return grid.beat_energy[i] if i < len(grid.beat_energy) else 0.5


def relative_energy(values: Sequence[float]) -> list[float]:
    """Blend each value with its rank among the others (0..1), so a loud but steady song still
    gets quieter and louder moments, while a quiet song stays mostly quiet."""
    n = len(values)
    if n < 2:
        return [float(v) for v in values]
    order = sorted(range(n), key=lambda i: values[i])
    rank = [0.0] * n
    for r, i in enumerate(order):
        rank[i] = r / (n - 1)
    return [0.5 * float(v) + 0.5 * rk for v, rk in zip(values, rank, strict=True)]


def pick_transition(choice: str, energy: float, bias: float) -> str:
    """``auto``: loud boundaries cut, middling ones crossfade, quiet ones fade through black."""
    if choice != "auto":
        return choice
    e = energy + bias
    return "cut" if e >= 0.7 else "crossfade" if e >= 0.35 else "fade"


def section_at(sections: Sequence[Section], t_s: float) -> int | None:
    """The index of the section playing at ``t_s`` (None when there are no sections)."""
    if not sections:
        return None
    k = bisect.bisect_right([s.start_s for s in sections], t_s) - 1
    return min(max(0, k), len(sections) - 1)


def section_entries(sections: Sequence[Section], cuts_s: Sequence[float]) -> dict[int, int]:
    """Which cut enters which section: ``{cut index: section index}`` for each section after the
    first whose start has a cut within ``SECTION_SNAP_S`` (the nearest one)."""
    entries: dict[int, int] = {}
    for k in range(1, len(sections)):
        if not cuts_s:
            break
        start_s = sections[k].start_s
        i = min(range(len(cuts_s)), key=lambda c: abs(cuts_s[c] - start_s))
        if abs(cuts_s[i] - start_s) <= SECTION_SNAP_S:
            entries[i] = k
    return entries


def section_transition(before: Section, after: Section) -> str | None:
    """How the music changes at a section boundary: ``rise`` (into a chorus or a drop, or a big
    rise in energy: a hard cut), ``fall`` (into an intro or a break, or a big fall: a crossfade),
    ``end`` (into the outro: a fade), or None (no change that calls for one)."""
    if after.label == "outro":
        return "end"
    if after.label in ("intro", "break"):
        return "fall"
    if after.label in ("chorus", "drop") or after.energy >= before.energy + BIG_ENERGY_CHANGE:
        return "rise"
    if after.energy <= before.energy - BIG_ENERGY_CHANGE:
        return "fall"
    return None


def plan_transitions(grid: BeatGrid, ends_s: Sequence[float], choice: str,
                     flavor: str) -> list[str]:
    """The transition out of each scene (``ends_s``: every scene's end; the last gets ``cut``), as
    the offline planner chooses them: by the music's energy at the cut (``pick_transition`` of its
    beat energy relative to the other scene ends'), except that a cut into a section follows how
    the music changes there (``section_transition``). ``choice`` (the request's ``transitions``)
    and the flavour's bias apply to every cut."""
    bias = FLAVOR_BIAS[flavor]
    edges = relative_energy([boundary_energy(grid, t) for t in ends_s])
    entries = section_entries(grid.sections, list(ends_s[:-1]))
    out = []
    for i, edge in enumerate(edges[:-1]):
        change = None
        if i in entries:
            k = entries[i]
            change = section_transition(grid.sections[k - 1], grid.sections[k])
        energy = edge if change is None else SECTION_EDGE_ENERGY[change]
        out.append(pick_transition(choice, energy, bias))
    return [*out, "cut"] if ends_s else []


def section_motifs(sections: Sequence[Section], subject: str, job_seed: int) -> dict[str, str]:
    """A motif per kind of section heard more than once (``{label: motif}``), each its own."""
    counts: dict[str, int] = {}
    for section in sections:
        counts[section.label] = counts.get(section.label, 0) + 1
    repeated = [label for label in dict.fromkeys(s.label for s in sections) if counts[label] > 1]
    first = stable_seed(job_seed, "motif")
    return {label: MOTIFS[(first + k) % len(MOTIFS)].format(subject=subject)
            for k, label in enumerate(repeated)}


class OfflinePlanner:
    name = "offline"
    model = "rules-v1"
    version = "1"
    paid = False
    unit = "plan"

    def plan(self, request: Request, grid: BeatGrid, job_seed: int,
             lyrics: Lyrics | None = None) -> Script:
        """One scene per boundary; a scene where words are sung shows them as its caption."""
        text = f"{request.prompt} {request.style or ''}"
        palette = palette_for(text, job_seed)
        bias = FLAVOR_BIAS[request.flavor]
        subject = subject_of(request.prompt)
        setting = request.prompt.rstrip(". ")
        archetype, roles = ARCHETYPES[request.mode]
        mean_energy = sum(grid.beat_energy) / len(grid.beat_energy) if grid.beat_energy else 0.5
        lighting = ("high-contrast neon rim light" if mean_energy + bias > 0.55
                    else "soft golden-hour light" if mean_energy + bias > 0.3 else "dim moonlight")
        mood = ("euphoric" if mean_energy + bias > 0.6 else "driving" if mean_energy + bias > 0.4
                else "dreamy")
        scenes = []
        n = len(grid.boundaries)
        energies = relative_energy([scene_energy(grid, b.start_s, b.end_s)
                                    for b in grid.boundaries])
        transitions = plan_transitions(grid, [b.end_s for b in grid.boundaries],
                                       request.transitions, request.flavor)
        motifs = section_motifs(grid.sections, subject, job_seed)
        for i, b in enumerate(grid.boundaries):
            energy = energies[i]
            k = section_at(grid.sections, (b.start_s + b.end_s) / 2)
            section = grid.sections[k] if k is not None else None
            # with sections, the shot follows the section's intensity (and the pacing) as much
            # as the beats'
            lvl = level(energy if section is None
                        else 0.5 * energy + 0.5 * section_intensity(section, request.pacing), bias)
            if request.flavor == "minimal":
                lvl = "low" if lvl == "low" else "mid"
            seed = stable_seed(job_seed, i)
            shot = SHOTS[lvl][(seed + i) % len(SHOTS[lvl])]
            prompt = shot.format(subject=subject, setting=setting, lighting=lighting)
            if section is not None and section.label in motifs:
                prompt += f", {motifs[section.label]}"
            if request.style:
                prompt += f", {request.style} style"
            role = roles[min(len(roles) - 1, i * len(roles) // n)]
            sung = lyrics.words_between(b.start_s, b.end_s) if lyrics else []
            transition = transitions[i]
            scenes.append(Scene(
                index=i, start_s=b.start_s, end_s=b.end_s, prompt=prompt,
                caption=" ".join(w.word for w in sung) if sung else f"{role}: {prompt}",
                camera=CAMERAS[lvl][(seed // 7) % len(CAMERAS[lvl])],  # type: ignore[arg-type]
                motion=MOTION[lvl], transition=transition,  # type: ignore[arg-type]
                energy=round(min(1.0, max(0.0, energy)), 4), seed=seed,
            ))
        form = ("" if not grid.sections
                else f" over {len(grid.sections)} sections ("
                + "-".join(s.label for s in grid.sections) + ")")
        return Script(
            summary=f"{n} scenes{form}, {archetype} arc: {request.prompt}",
            archetype=archetype,
            style=Style(palette_hex=palette, lighting=lighting, mood=mood),
            characters=[Character(name=subject, description=f"{subject}, seen in silhouette")],
            scenes=scenes,
        )


class OfflineImages:
    """A procedural card painted from what a real image model is sent: the scene's prompt, camera
    and seed and the plan's style (never the caption or the scene's position in the plan, so an
    edit elsewhere in the plan leaves the card, and its cache key, as it is)."""

    name = "offline"
    model = "procedural-card"
    version = "3"  # 3: the prompt painted (not the caption), the label is the camera only
    paid = False
    unit = "image"

    def render(self, scene: Scene, style: Style, size: tuple[int, int], out_path: Path,
               new_row: NewRow | None = None) -> None:
        text = scene.prompt.lower()
        landscape = "skyline" if any(w in text for w in URBAN_WORDS) else "ridges"
        label = scene.camera.replace("_", " ").upper()
        card = render_card(size, style.palette_hex, scene.seed, scene.prompt, label, landscape)
        card.save(out_path, format="PNG", optimize=False, compress_level=3)


class OfflineVideo:
    """Animatic clips: the scene's camera move over its card. Only 5 s and 10 s, like real models."""

    name = "offline"
    model = "animatic"
    version = "2"  # 2: frames resampled in YUV 4:2:0 (numba), x264 ultrafast
    paid = False
    unit = "video_s"
    allowed_durations_s = (5.0, 10.0)
    receives_beats = True  # the camera move pulses on them

    def output_size(self, target_size: tuple[int, int]) -> tuple[int, int]:
        w, h = target_size
        scale = 720 / min(w, h)  # 720p-class, as most image-to-video models deliver
        return int(round(w * scale / 2) * 2), int(round(h * scale / 2) * 2)

    def generate(self, image_path: Path, scene: Scene, duration_s: float,
                 beats_s: Sequence[float], size: tuple[int, int], out_path: Path,
                 new_row: NewRow | None = None) -> None:
        render_animatic(image_path, out_path, duration_s, size, scene.camera, beats_s)
