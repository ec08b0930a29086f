"""Ground truth for song sections: longer songs with a known form, rendered like ``music_corpus``.

``tests/music_corpus.py`` has two songs with a form (``song_pop``, ``song_waltz``: intro, verse,
chorus, verse, chorus, outro, under a minute each). The pieces here add what those lack, written
with the same score and rendering helpers (imported, not copied): a bridge, a third chorus, long
sections, a three-minute length (the speed budget's size), and electronic music whose form is
breaks and drops. Each section has its own instrumentation, level and (for choruses and bridges)
chord loop; repeated sections repeat their material. Section, beat and downbeat times follow
exactly from the tempo map, plus FluidSynth's start latency, as in ``music_corpus``.

- ``song_bridge``: 4/4 at 96 BPM, intro 4, verse 8, chorus 8, verse 8, chorus 8, bridge 8
  (half-time drums, strings, a new chord loop), chorus 8, outro 4 bars (140 s).
- ``song_long``: 4/4 at 100 BPM, intro 8, verse 16, chorus 8, verse 16, chorus 8, bridge 8,
  chorus 8, outro 8 bars (193 s: the three-minute song).
- ``song_edm``: 4/4 at 126 BPM, intro 8 (kick and pad), break 8 (pad and arpeggio, no drums),
  drop 16 (everything), break 8, drop 16, outro 8 bars (kick and pad, fading) (123 s).

``render(name, folder)`` gives a ``music_corpus.Piece`` (cached like ``music_corpus.render``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from tests import music_corpus as mc
from tests.music_corpus import (
    CLAP,
    CRASH,
    HAT,
    KICK,
    OPEN_HAT,
    RIDE,
    SNARE,
    STICK,
    Piece,
    Score,
    Section,
    chord_notes,
)


def _pop_form(s: Score, rng: np.random.Generator, form: Sequence[tuple[str, int]]) -> Score:
    """A band arrangement of ``form``: quiet intro and outro (keys, soft hi-hat), light verses
    (keys, bass on the bar, side stick), loud choruses (full kit, guitar, strings, lead) and a
    bridge between them in level (half-time ride, strings, organ) on a chord loop of its own."""
    s.part("drums", None), s.part("bass", "bass"), s.part("keys", "piano"), s.part("strings", "strings")
    s.part("guitar", "guitar"), s.part("lead", "saw"), s.part("organ", "organ")
    loops = {"verse": ["C", "Am", "F", "G"], "chorus": ["F", "G", "Em", "Am"],
             "bridge": ["Dm", "Bb", "F", "C"]}
    for label, n_bars in form:
        s.section(label)
        loop = loops.get(label, loops["verse"])
        for bar in range(n_bars):
            t0, b = s.bar(4, 4, 4)
            chord = loop[bar % len(loop)]
            root, tones = chord_notes(chord)
            fade = 1.0 - 0.5 * bar / n_bars if label == "outro" else 1.0
            for k in range(4):
                t = t0 + k * b
                if label in ("intro", "outro"):
                    s.add("keys", t, b * 0.9, tones[k % len(tones)], (70 if k == 0 else 55) * fade)
                    s.add("drums", t, b / 2, HAT, 50 * fade)
                    if k == 0:
                        s.add("bass", t, 4 * b * 0.9, root, 70 * fade)
                elif label == "chorus":
                    s.add("drums", t, b / 2, OPEN_HAT if k == 3 else HAT, 90)
                    s.add("drums", t + b / 2, b / 2, HAT, 70)
                    s.add("drums", t, b / 2, SNARE if k % 2 else KICK, 112)
                    s.add("bass", t, b / 2 * 0.9, root, 105), s.add("bass", t + b / 2, b / 2 * 0.9, root, 90)
                    for key in (tones[0] - 12, tones[2] - 12, tones[0]):
                        s.add("guitar", t, b * 0.8, key, 80)
                elif label == "bridge":
                    s.add("drums", t, b / 2, RIDE, 70)
                    if k == 0:
                        s.add("drums", t, b / 2, KICK, 85)
                    if k == 2:
                        s.add("drums", t, b / 2, SNARE, 80)
                        s.add("bass", t, 2 * b * 0.9, root + 7, 80)
                    if k == 0:
                        s.add("bass", t, 2 * b * 0.9, root, 85)
                else:  # verse
                    s.add("drums", t, b / 2, HAT, 62)
                    s.add("drums", t, b / 2, STICK if k % 2 else KICK, 78)
                    if k == 0:
                        s.add("bass", t, b * 1.8, root, 85)
                    for key in tones[:3]:
                        s.add("keys", t, b * 0.6, key, 55 if k else 62)
            if label == "chorus":
                if bar == 0:
                    s.add("drums", t0, 4 * b, CRASH, 100)
                for key in tones:
                    s.add("strings", t0, 4 * b * 0.98, key, 75)
                mc._melody(s, rng, "lead", t0, b, chord, [0, 1, 1.5, 2, 3], 90)
            elif label == "bridge":
                for key in tones:
                    s.add("strings", t0, 4 * b * 0.98, key - 12, 70)
                    s.add("organ", t0, 4 * b * 0.98, key, 50)
            elif label == "verse" and bar % 2 == 0:
                mc._melody(s, rng, "lead", t0, b, chord, [0, 1, 2], 62)
    return s


FORM_BRIDGE = (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("bridge", 8),
               ("chorus", 8), ("outro", 4))
FORM_LONG = (("intro", 8), ("verse", 16), ("chorus", 8), ("verse", 16), ("chorus", 8), ("bridge", 8),
             ("chorus", 8), ("outro", 8))
FORM_EDM = (("intro", 8), ("break", 8), ("drop", 16), ("break", 8), ("drop", 16), ("outro", 8))


def song_bridge(seed: int = 21) -> Score:
    s = Score("song_bridge", "pop song with a bridge: intro verse chorus verse chorus bridge chorus outro",
              "96", "4/4", "drums")
    s.tempo(0, 96.0)
    return _pop_form(s, np.random.default_rng(seed), FORM_BRIDGE)


def song_long(seed: int = 22) -> Score:
    s = Score("song_long", "three-minute pop song: long verses, three choruses, a bridge", "100", "4/4",
              "drums")
    s.tempo(0, 100.0)
    return _pop_form(s, np.random.default_rng(seed), FORM_LONG)


def song_edm(seed: int = 23) -> Score:
    """Electronic: breaks without drums, drops entered at full level on the bar."""
    rng = np.random.default_rng(seed)
    s = Score("song_edm", "electronic: intro, break, drop, break, drop, outro", "126", "4/4", "drums")
    s.tempo(0, 126.0)
    s.part("drums", None), s.part("bass", "synth_bass"), s.part("stabs", "saw"), s.part("pad", "pad")
    s.part("arp", "square")
    loop = ["Am", "F", "C", "G"]
    for label, n_bars in FORM_EDM:
        s.section(label)
        for bar in range(n_bars):
            t0, b = s.bar(4, 4, 4)
            chord = loop[(bar // 2) % len(loop)]
            root, tones = chord_notes(chord)
            fade = 1.0 - 0.6 * bar / n_bars if label == "outro" else 1.0
            for key in tones:
                s.add("pad", t0, 4 * b * 0.98, key - 12, (60 if label == "break" else 45) * fade)
            if label == "break":
                for six in range(16):  # a soft arpeggio on sixteenths
                    s.add("arp", t0 + six * b / 4, b / 4 * 0.7, tones[six % len(tones)] + 12,
                          50 + 10 * (six % 4 == 0))
                continue
            for k in range(4):
                t = t0 + k * b
                s.add("drums", t, b / 2, KICK, (115 if label == "drop" else 95) * fade)
                if label == "drop":
                    s.add("drums", t + b / 2, b / 4, OPEN_HAT if k == 3 else HAT, 85)
                    if k % 2:
                        s.add("drums", t, b / 2, CLAP, 100)
                    s.add("bass", t + b / 2, b / 2 * 0.8, root, 110)
                else:
                    s.add("drums", t + b / 2, b / 4, HAT, 55 * fade)
            if label == "drop":
                if bar == 0:
                    s.add("drums", t0, 4 * b, CRASH, 110)
                for six in (0, 3, 6, 10, 12):
                    for key in tones:
                        s.add("stabs", t0 + six * b / 4, b / 4 * 0.8, key, 80 + rng.normal(0, 4))
    return s


BUILDERS = {f.__name__: f for f in (song_bridge, song_long, song_edm)}
PIECES = tuple(BUILDERS)
missing_tools = mc.missing_tools


def render(name: str, folder: str | Path) -> Piece:
    """Render piece ``name`` (all instruments) into ``folder`` (cached by the MIDI's hash) with
    its truth: beats, downbeats and sections in seconds of the WAV."""
    if name not in BUILDERS:
        raise ValueError(f"piece {name!r}: unknown; fix: use one of {', '.join(PIECES)}")
    s = BUILDERS[name]()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    latency = mc.render_latency_s(folder)
    parts = tuple(s.parts)
    midi = s.midi_bytes(parts)
    end_s = float(s.ticks_to_s([s.end_tick])[0]) + mc.TAIL_S
    key = hashlib.sha1(midi + mc._font_key().encode() + str(mc.SAMPLE_RATE).encode()).hexdigest()[:12]
    wav = folder / f"{name}-full-{key}.wav"
    if not wav.exists():
        raw = folder / f".{wav.stem}.raw.wav"
        mc._fluidsynth(midi, raw)
        y, sr = sf.read(raw, always_2d=True, dtype="float32")
        n = int(round(end_s * sr))
        y = np.pad(y, ((0, max(0, n - len(y))), (0, 0)))[:n]
        y *= mc.PEAK / max(float(np.abs(y).max()), 1e-9)
        tmp = wav.with_name(f".{wav.name}.tmp.wav")
        sf.write(tmp, y, sr, subtype="PCM_16")
        os.replace(tmp, wav)
        raw.unlink()
    bounds = [*s.ticks_to_s([t for t, _ in s.section_ticks]) + latency, end_s]
    bounds[0] = 0.0
    sections = [Section(round(float(a), 6), round(float(b), 6), label)
                for a, b, (_, label) in zip(bounds, bounds[1:], s.section_ticks, strict=False)]
    piece = Piece(name=name, description=s.description, wav_path=wav, parts=parts,
                  duration_s=round(end_s, 6), tempo_label=s.tempo_label, meter=s.meter,
                  beats_s=[round(float(t), 6) for t in s.ticks_to_s(s.beat_ticks()) + latency],
                  downbeats_s=[round(float(t), 6) for t in s.ticks_to_s(s.downbeat_ticks()) + latency],
                  sections=sections, latency_s=latency, beat_part=s.beat_part, has_drums=True)
    truth = folder / f"{wav.stem}.json"
    if not truth.exists():
        truth.write_text(json.dumps(piece.truth(), indent=1))
    return piece
