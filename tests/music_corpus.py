"""Ground-truth music: pieces written as MIDI, rendered with real instrument samples, truth exact.

Each piece is a small arrangement (drums, bass, chords, melody unless noted) written with ``mido``
into a Standard MIDI File whose tempo map and time signatures are the piece's own; it is rendered
by the ``fluidsynth`` CLI with a General MIDI SoundFont (Debian ``fluid-soundfont-gm``). Because
every note sits on a tick of the score, the beat, downbeat and section times follow exactly from
the tempo map (``ticks_to_s``); the only addition is FluidSynth's start latency (the time from a
note's MIDI time to the first sound of its attack), measured once per SoundFont by rendering
single wood-block clicks (``render_latency_s``; about 5 ms with FluidR3_GM at 44.1 kHz) and
added to every time.

Pieces (``PIECES``; ``build(name)`` gives the score, ``render(name, folder)`` the WAV and truth):

- ``swing``: jazz swing at 104 BPM, 4/4: ride "ding ding-a", hi-hat on 2 and 4, feathered kick,
  comping on swung off-beats, walking bass.
- ``shuffle``: a blues shuffle at 100 BPM, 4/4, triplet hats and swung eighths everywhere.
- ``ramp``: a rock groove with an accelerando from 90 to 130 BPM (a tempo event on every beat).
- ``rubato``: solo piano around 76 BPM whose tempo wanders +-10 % beat by beat (smooth, seeded).
- ``six_eight``: a jig-like 6/8 at 70 dotted-quarter beats per minute (beat = dotted quarter).
- ``march``: a 2/4 march at 112 BPM (bass drum and tuba on the beats, horns on the off-beats).
- ``electronic``: 128 BPM four-on-the-floor with an off-beat bass and syncopated stabs.
- ``ballad``: piano and strings at 70 BPM, no drums.
- ``song_pop``: 4/4 at 100 BPM, intro, verse, chorus, verse, chorus, outro; choruses louder and
  denser on a different chord loop.
- ``song_waltz``: the same structure in 3/4 at 132 BPM.

Beats are the beats a listener taps: quarter notes in x/4, dotted quarters in 6/8; downbeats are
bar starts; sections are ``{start_s, end_s, label}`` (pieces without a song form have one section).
Every render is scaled to peak at -1 dBFS. Rendering is deterministic (seeded) and cached in a
folder the caller gives: the WAV's name holds a hash of the MIDI bytes, the parts rendered and the
SoundFont, so a changed score renders again.
``render(name, folder, parts=("click",))`` renders only a wood-block click on every beat (the
check that the tempo-map arithmetic matches what FluidSynth plays); ``parts=("drums",)`` etc. render
stems. Missing tools: ``missing_tools()`` says what to install.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

TPB = 960  # ticks per quarter note: fine ticks keep FluidSynth's per-tempo-change rounding small
SAMPLE_RATE = 44100
TAIL_S = 1.0  # sound kept after the last bar (the final chord rings)
PEAK = 10 ** (-1 / 20)  # every render is scaled to peak at -1 dBFS, as a mastered track
SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
SOUNDFONT_NAMES = ("FluidR3_GM.sf2", "default-GM.sf2")
INSTALL_FIX = "fix: apt-get install -y fluidsynth fluid-soundfont-gm"
DRUM_CHANNEL = 9
CLICK_PART = "click"

# General MIDI programs and drum keys used below
PROG = {"piano": 0, "epiano": 4, "organ": 16, "nylon": 24, "guitar": 29, "ac_bass": 32,
        "bass": 33, "synth_bass": 38, "violin": 40, "strings": 48, "slow_strings": 49,
        "trumpet": 56, "tuba": 58, "horns": 60, "brass": 61, "alto_sax": 65, "clarinet": 71,
        "piccolo": 72, "flute": 73, "square": 80, "saw": 81, "pad": 89}
KICK, STICK, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = 36, 37, 38, 39, 42, 44, 46, 49, 51
TAMBOURINE, WOOD_HI, WOOD_LO = 54, 76, 77

NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def chord_notes(name: str) -> tuple[int, list[int]]:
    """``"Am"`` -> (bass root near C2, triad/seventh pitch classes above middle C as MIDI notes)."""
    pc = NOTE_NAMES[name[0]]
    rest = name[1:]
    if rest.startswith("b"):
        pc, rest = pc - 1, rest[1:]
    elif rest.startswith("#"):
        pc, rest = pc + 1, rest[1:]
    minor = rest.startswith("m")
    seventh = rest.endswith("7")
    intervals = [0, 3 if minor else 4, 7] + ([10] if seventh else [])
    root = 36 + pc % 12
    return root, [60 + (pc + i) % 12 for i in intervals]


@dataclass(frozen=True)
class Section:
    start_s: float
    end_s: float
    label: str


@dataclass
class Score:
    """Notes on ticks plus the tempo map, time signatures and sections that give their times."""

    name: str
    description: str
    tempo_label: str
    meter: str  # "4/4", "6/8", ...
    beat_part: str  # a part that sounds on every beat (the stem the onset test listens to)
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (channel, program)
    notes: list[tuple[str, int, int, int, int]] = field(default_factory=list)  # part,tick,dur,key,vel
    tempo_map: list[tuple[int, int]] = field(default_factory=list)  # (tick, microseconds/quarter)
    bars: list[tuple[int, int, int, int]] = field(default_factory=list)  # start, num, den, beat ticks
    section_ticks: list[tuple[int, str]] = field(default_factory=list)
    end_tick: int = 0

    def part(self, name: str, program: str | None) -> None:
        if name not in self.parts:
            channel = DRUM_CHANNEL if program is None else len(
                [c for c, _ in self.parts.values() if c != DRUM_CHANNEL])
            if channel >= DRUM_CHANNEL and program is not None:
                channel += 1
            self.parts[name] = (channel, 0 if program is None else PROG[program])

    def add(self, part: str, tick: float, dur: float, key: int, vel: float) -> None:
        self.notes.append((part, int(round(tick)), max(1, int(round(dur))), int(key),
                           int(np.clip(round(vel), 1, 127))))

    def tempo(self, tick: int, bpm_quarter: float) -> None:
        us = int(round(60e6 / bpm_quarter))
        if self.tempo_map and self.tempo_map[-1][0] == tick:
            self.tempo_map[-1] = (tick, us)
        else:
            self.tempo_map.append((tick, us))

    def bar(self, num: int, den: int, beats: int) -> tuple[int, int]:
        """Append a bar of ``num/den`` with ``beats`` tapped beats; returns (start tick, beat ticks)."""
        start = self.end_tick
        length = num * TPB * 4 // den
        self.bars.append((start, num, den, length // beats))
        self.end_tick = start + length
        return start, length // beats

    def section(self, label: str) -> None:
        self.section_ticks.append((self.end_tick, label))

    # --- truth -------------------------------------------------------------------------------
    def ticks_to_s(self, ticks: Sequence[int] | np.ndarray) -> np.ndarray:
        """Seconds of the given ticks under the tempo map (exact: integer microseconds per tick)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        starts = np.array([t for t, _ in self.tempo_map], dtype=np.int64)
        us = np.array([u for _, u in self.tempo_map], dtype=np.float64)
        seg_s = np.diff(starts) * us[:-1] / 1e6 / TPB
        base_s = np.concatenate([[0.0], np.cumsum(seg_s)])
        i = np.searchsorted(starts, ticks, side="right") - 1
        return base_s[i] + (ticks - starts[i]) * us[i] / 1e6 / TPB

    def beat_ticks(self) -> list[int]:
        return [s + k * bt for s, num, den, bt in self.bars for k in range((num * TPB * 4 // den) // bt)]

    def downbeat_ticks(self) -> list[int]:
        return [s for s, _, _, _ in self.bars]

    # --- MIDI --------------------------------------------------------------------------------
    def midi_bytes(self, parts: Sequence[str]) -> bytes:
        mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
        conductor = [(t, 0, mido.MetaMessage("set_tempo", tempo=u, time=0)) for t, u in self.tempo_map]
        last = None
        for start, num, den, _ in self.bars:
            if (num, den) != last:
                conductor.append((start, 1, mido.MetaMessage("time_signature", numerator=num,
                                                             denominator=den, time=0)))
                last = (num, den)
        mid.tracks.append(_track(conductor, self.end_tick))
        for name in parts:
            channel, program = self.parts[name]
            events: list[tuple[int, int, mido.Message]] = []
            if channel != DRUM_CHANNEL:
                events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
            for part, tick, dur, key, vel in self.notes:
                if part == name:
                    events.append((tick, 2, mido.Message("note_on", channel=channel, note=key,
                                                         velocity=vel)))
                    events.append((tick + dur, 1, mido.Message("note_off", channel=channel, note=key,
                                                               velocity=0)))
            mid.tracks.append(_track(events, self.end_tick))
        buffer = io.BytesIO()
        mid.save(file=buffer)
        return buffer.getvalue()


def _track(events: list[tuple[int, int, object]], end_tick: int) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    tail = int(round(TAIL_S * 4 * TPB))  # generous: the WAV is trimmed to the stated length anyway
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now) + tail))
    return track


# --- the pieces ------------------------------------------------------------------------------

def _melody(s: Score, rng: np.random.Generator, part: str, start: int, beat: int, chord: str,
            steps: Sequence[float], vel: float, octave: int = 12) -> None:
    """A simple melody over a bar: chord tones on the given beat fractions, random walk."""
    _, tones = chord_notes(chord)
    pool = sorted({t + octave for t in tones} | {t + octave + 12 for t in tones[:2]})
    idx = int(rng.integers(len(pool)))
    for k, pos in enumerate(steps):
        idx = int(np.clip(idx + rng.integers(-1, 2), 0, len(pool) - 1))
        nxt = steps[k + 1] if k + 1 < len(steps) else pos + 1.0
        s.add(part, start + pos * beat, (nxt - pos) * beat * 0.9, pool[idx], vel + rng.normal(0, 6))


def swing(seed: int = 1) -> Score:
    """Jazz swing: ride "ding ding-a", hi-hat on 2 and 4, feathered kick, snare and piano comping
    on swung off-beats, walking bass, a sax line in swung eighths."""
    rng = np.random.default_rng(seed)
    s = Score("swing", "jazz swing: ride, walking bass, comping on swung off-beats", "104 (swing)",
              "4/4", "drums")
    s.part("drums", None), s.part("bass", "ac_bass"), s.part("piano", "piano"), s.part("sax", "alto_sax")
    s.tempo(0, 104.0)
    s.section("verse")
    loop = ["Dm7", "G7", "C", "A7", "Dm7", "G7", "E7", "A7"]
    for bar in range(22):
        t0, b = s.bar(4, 4, 4)
        chord = loop[bar % len(loop)]
        root, tones = chord_notes(chord)
        nxt_root, _ = chord_notes(loop[(bar + 1) % len(loop)])
        walk = [root, root + (3 if "m" in chord else 4), root + 7, nxt_root + 1 if rng.random() < 0.5
                else nxt_root - 1]
        for k in range(4):
            t = t0 + k * b
            s.add("drums", t, b / 2, RIDE, (92 if k % 2 else 76) + rng.normal(0, 4))
            if k % 2:
                s.add("drums", t + 2 * b / 3, b / 3, RIDE, 62 + rng.normal(0, 4))
                s.add("drums", t, b / 2, PEDAL_HAT, 70)
            s.add("drums", t, b / 2, KICK, 38 + rng.normal(0, 3))  # feathered
            if rng.random() < 0.3:
                s.add("drums", t + 2 * b / 3, b / 3, SNARE, 55 + rng.normal(0, 8))
            s.add("bass", t, b * 0.85, walk[k], 88 + rng.normal(0, 4))
        for pos in ([0, 1 + 2 / 3] if bar % 2 == 0 else [2 / 3, 2 + 2 / 3]):  # Charleston comping
            for key in tones:
                s.add("piano", t0 + pos * b, b * 0.4, key, 64 + rng.normal(0, 4))
        if bar >= 2:
            _melody(s, rng, "sax", t0, b, chord, [0, 2 / 3, 1 + 2 / 3, 2, 2 + 2 / 3, 3 + 2 / 3], 80,
                    octave=0)
    return s


def shuffle(seed: int = 10) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("shuffle", "blues shuffle, triplet hats and swung eighths", "100 (shuffle)", "4/4",
              "drums")
    s.part("drums", None), s.part("bass", "ac_bass"), s.part("piano", "piano"), s.part("sax", "alto_sax")
    s.tempo(0, 100.0)
    s.section("verse")
    loop = ["C7", "C7", "F7", "C7", "G7", "F7", "C7", "G7"]
    for bar in range(20):
        t0, b = s.bar(4, 4, 4)
        chord = loop[bar % len(loop)]
        root, tones = chord_notes(chord)
        for k in range(4):
            t = t0 + k * b
            s.add("drums", t, b / 3, HAT, 80 + rng.normal(0, 5))
            s.add("drums", t + 2 * b / 3, b / 3, HAT, 60 + rng.normal(0, 5))
            s.add("drums", t, b / 2, KICK if k % 2 == 0 else SNARE, 100 if k % 2 == 0 else 95)
            walk = [root, root + 4, root + 7, root + 9][k]  # boogie bass, swung eighths
            s.add("bass", t, 2 * b / 3 * 0.9, walk, 95)
            s.add("bass", t + 2 * b / 3, b / 3 * 0.9, walk, 75)
            if k in (1, 3):
                for key in tones:
                    s.add("piano", t + 2 * b / 3, b / 3, key, 62)
        if bar >= 2:
            _melody(s, rng, "sax", t0, b, chord, [0, 2 / 3, 1, 5 / 3, 2, 3, 3 + 2 / 3], 78, octave=0)
    return s


def ramp(seed: int = 2) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("ramp", "rock groove, accelerando 90 -> 130 BPM", "90->130", "4/4", "drums")
    s.part("drums", None), s.part("bass", "bass"), s.part("guitar", "guitar"), s.part("lead", "square")
    s.section("verse")
    n_bars = 24
    loop = ["Am", "F", "C", "G"]
    for bar in range(n_bars):
        t0, b = s.bar(4, 4, 4)
        chord = loop[bar % 4]
        root, tones = chord_notes(chord)
        for k in range(4):
            t = t0 + k * b
            s.tempo(t, 90.0 + 40.0 * (bar * 4 + k) / (n_bars * 4 - 1))
            s.add("drums", t, b / 2, HAT, 85), s.add("drums", t + b / 2, b / 2, HAT, 60)
            s.add("drums", t, b / 2, KICK if k % 2 == 0 else SNARE, 105)
            s.add("bass", t, b / 2 * 0.9, root, 95), s.add("bass", t + b / 2, b / 2 * 0.9, root, 80)
            for key in (tones[0] - 12, tones[2] - 12, tones[0]):  # power chord
                s.add("guitar", t, b * 0.8, key, 70)
        if bar % 4 == 0:
            s.add("drums", t0, b, CRASH, 90)
        _melody(s, rng, "lead", t0, b, chord, [0, 1, 1.5, 2, 3], 70)
    return s


def rubato(seed: int = 3) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("rubato", "solo piano, tempo wandering +-10 % around 76 BPM", "76 +-10%", "4/4", "left")
    s.part("left", "piano"), s.part("right", "piano")
    s.section("verse")
    n_bars = 16
    n = n_bars * 4
    phases = rng.uniform(0, 2 * np.pi, 3)
    x = np.arange(n)
    wander = (np.sin(2 * np.pi * x / 23 + phases[0]) + 0.6 * np.sin(2 * np.pi * x / 11 + phases[1])
              + 0.3 * np.sin(2 * np.pi * x / 5 + phases[2]))
    wander = 0.10 * wander / np.abs(wander).max()
    loop = ["C", "Am", "Dm", "G7", "C", "Em", "F", "G"]
    for bar in range(n_bars):
        t0, b = s.bar(4, 4, 4)
        chord = loop[bar % len(loop)]
        root, tones = chord_notes(chord)
        for k in range(4):
            t = t0 + k * b
            s.tempo(t, 76.0 * (1.0 + wander[bar * 4 + k]))
            key = root + 12 if k == 0 else tones[(k - 1) % len(tones)] - 12
            s.add("left", t, b * 0.95, key, (80 if k == 0 else 62) + rng.normal(0, 4))
        _melody(s, rng, "right", t0, b, chord, [0, 1, 1.5, 2, 3], 74)
    return s


def six_eight(seed: int = 4) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("six_eight", "jig in 6/8, beat = dotted quarter at 70", "70 (dotted quarter)", "6/8",
              "drums")
    s.part("drums", None), s.part("bass", "ac_bass"), s.part("guitar", "nylon"), s.part("flute", "flute")
    s.tempo(0, 70.0 * 1.5)  # quarter-note tempo of a dotted-quarter 70
    s.section("verse")
    loop = ["D", "G", "D", "A", "Bm", "G", "A", "D"]
    for bar in range(24):
        t0, beat = s.bar(6, 8, 2)
        e = beat / 3  # an eighth note
        chord = loop[bar % len(loop)]
        root, tones = chord_notes(chord)
        for k in range(6):
            s.add("drums", t0 + k * e, e, HAT, (90 if k % 3 == 0 else 55) + rng.normal(0, 4))
            s.add("guitar", t0 + k * e, e * 0.9, [tones[0], tones[1], tones[2]][k % 3] - 12,
                  68 if k % 3 == 0 else 52)
        s.add("drums", t0, e, KICK, 105), s.add("drums", t0 + beat, e, SNARE, 90)
        s.add("bass", t0, beat * 0.9, root, 95), s.add("bass", t0 + beat, beat * 0.9, root + 7, 85)
        _melody(s, rng, "flute", t0, e, chord, [0, 1, 2, 3, 4, 5] if bar % 2 else [0, 2, 3, 5], 80)
    return s


def march(seed: int = 5) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("march", "2/4 march: bass drum and tuba on the beats, horns off the beat", "112", "2/4",
              "drums")
    s.part("drums", None), s.part("tuba", "tuba"), s.part("horns", "horns"), s.part("trumpet", "trumpet")
    s.tempo(0, 112.0)
    s.section("verse")
    loop = ["Bb", "Bb", "F7", "F7", "F7", "F7", "Bb", "Bb"]
    for bar in range(40):
        t0, b = s.bar(2, 4, 2)
        chord = loop[bar % len(loop)]
        root, tones = chord_notes(chord)
        for k in range(2):
            t = t0 + k * b
            s.add("drums", t, b / 2, KICK, 110 if k == 0 else 90)
            s.add("drums", t, b / 4, SNARE, 85), s.add("drums", t + b / 2, b / 4, SNARE, 65)
            s.add("drums", t + 3 * b / 4, b / 4, SNARE, 60)
            s.add("tuba", t, b / 2, root - 12 if k == 0 else root - 5, 100)
            for key in tones[:3]:
                s.add("horns", t + b / 2, b / 3, key - 12, 70)
        if bar % 4 == 0:
            s.add("drums", t0, b, CRASH, 85)
        _melody(s, rng, "trumpet", t0, b, chord, [0, 0.5, 1, 1.5] if bar % 2 == 0 else [0, 1], 85)
    return s


def electronic(seed: int = 6) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("electronic", "128 BPM four-on-the-floor, off-beat bass, syncopated stabs", "128", "4/4",
              "drums")
    s.part("drums", None), s.part("bass", "synth_bass"), s.part("stabs", "saw"), s.part("pad", "pad")
    s.tempo(0, 128.0)
    s.section("verse")
    loop = ["Am", "Am", "F", "G"]
    for bar in range(28):
        t0, b = s.bar(4, 4, 4)
        chord = loop[bar % 4]
        root, tones = chord_notes(chord)
        for k in range(4):
            t = t0 + k * b
            s.add("drums", t, b / 2, KICK, 115)
            s.add("drums", t + b / 2, b / 4, OPEN_HAT if k == 3 else HAT, 80)
            if k % 2:
                s.add("drums", t, b / 2, CLAP, 95)
            s.add("bass", t + b / 2, b / 2 * 0.8, root, 100)  # the off-beat bass
        for six in (0, 3, 6, 10, 12):  # 3-3-4-2 stabs on sixteenths
            for key in tones:
                s.add("stabs", t0 + six * b / 4, b / 4 * 0.8, key, 72 + rng.normal(0, 4))
        for key in tones:
            s.add("pad", t0, 4 * b * 0.98, key - 12, 45)
    return s


def ballad(seed: int = 7) -> Score:
    rng = np.random.default_rng(seed)
    s = Score("ballad", "piano arpeggios, strings and a violin melody at 70 BPM, no drums", "70",
              "4/4", "piano")
    s.part("piano", "piano"), s.part("strings", "slow_strings"), s.part("violin", "violin")
    s.tempo(0, 70.0)
    s.section("verse")
    loop = ["C", "G", "Am", "F", "C", "G", "F", "G"]
    for bar in range(14):
        t0, b = s.bar(4, 4, 4)
        chord = loop[bar % len(loop)]
        root, tones = chord_notes(chord)
        arp = [root + 12, tones[0] - 12, tones[1] - 12, tones[2] - 12, tones[0], tones[2] - 12,
               tones[1] - 12, tones[0] - 12]
        for k, key in enumerate(arp):
            s.add("piano", t0 + k * b / 2, b * 0.9, key, (78 if k % 2 == 0 else 55) + rng.normal(0, 3))
        for key in tones:
            s.add("strings", t0, 4 * b * 0.98, key - 12, 50)
        if bar >= 2:
            _melody(s, rng, "violin", t0, b, chord, [0, 1, 2, 2.5, 3], 70)
    return s


def _song(s: Score, rng: np.random.Generator, beats: int, form: Sequence[tuple[str, int]],
          verse_loop: Sequence[str], chorus_loop: Sequence[str]) -> Score:
    """Intro, verses and choruses: choruses louder and denser on their own chord loop."""
    s.part("drums", None), s.part("bass", "bass"), s.part("keys", "piano"), s.part("strings", "strings")
    s.part("guitar", "guitar"), s.part("lead", "trumpet" if beats == 3 else "saw")
    for label, n_bars in form:
        s.section(label)
        loop = chorus_loop if label == "chorus" else verse_loop
        for bar in range(n_bars):
            t0, b = s.bar(beats, 4, beats)
            chord = loop[bar % len(loop)]
            root, tones = chord_notes(chord)
            last = label == "outro" and bar == n_bars - 1
            for k in range(beats):
                t = t0 + k * b
                if label == "intro" or last:  # keys and a soft hi-hat
                    s.add("keys", t, b * 0.9, tones[k % len(tones)], 55 if k else 70)
                    s.add("drums", t, b / 2, HAT, 50 if k else 60)
                    if k == 0:
                        s.add("bass", t, beats * b * 0.9, root, 70)
                    continue
                accent = k % 2 == 1 if beats == 4 else k > 0  # the backbeat: 2 and 4, or 2 and 3
                if label == "chorus":
                    s.add("drums", t, b / 2, OPEN_HAT if k == beats - 1 else HAT, 90)
                    s.add("drums", t + b / 2, b / 2, HAT, 70)
                    s.add("drums", t, b / 2, SNARE if accent else KICK, 112)
                    s.add("bass", t, b / 2 * 0.9, root, 105), s.add("bass", t + b / 2, b / 2 * 0.9, root, 90)
                    for key in (tones[0] - 12, tones[2] - 12, tones[0]):
                        s.add("guitar", t, b * 0.8, key, 80)
                else:  # verse: lighter kit, bass on the bar, keys on the beats
                    s.add("drums", t, b / 2, HAT, 62)
                    s.add("drums", t, b / 2, STICK if accent else KICK, 78)
                    if k == 0:
                        s.add("bass", t, b * 1.8, root, 85)
                    for key in tones[:3]:
                        s.add("keys", t, b * 0.6, key, 55 if k else 62)
            if label == "chorus":
                if bar == 0:
                    s.add("drums", t0, beats * b, CRASH, 100)
                for key in tones:
                    s.add("strings", t0, beats * b * 0.98, key, 75)
                steps = [0, 1, 1.5, 2, 3] if beats == 4 else [0, 1, 2]
                _melody(s, rng, "lead", t0, b, chord, steps, 90)
            elif label == "verse" and bar % 2 == 0:
                _melody(s, rng, "lead", t0, b, chord, [0, 1] if beats == 3 else [0, 1, 2], 62)
    return s


SONG_FORM_POP = (("intro", 2), ("verse", 4), ("chorus", 4), ("verse", 4), ("chorus", 4), ("outro", 2))
SONG_FORM_WALTZ = (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8), ("outro", 4))


def song_pop(seed: int = 8) -> Score:
    s = Score("song_pop", "pop song: intro verse chorus verse chorus outro", "100", "4/4", "drums")
    s.tempo(0, 100.0)
    return _song(s, np.random.default_rng(seed), 4, SONG_FORM_POP, ["C", "Am", "F", "G"],
                 ["F", "G", "Em", "Am"])


def song_waltz(seed: int = 9) -> Score:
    s = Score("song_waltz", "3/4 song: intro verse chorus verse chorus outro", "132", "3/4", "drums")
    s.tempo(0, 132.0)
    return _song(s, np.random.default_rng(seed), 3, SONG_FORM_WALTZ, ["D", "Bm", "G", "A"],
                 ["G", "A", "F#m", "Bm"])


BUILDERS = {f.__name__: f for f in (swing, shuffle, ramp, rubato, six_eight, march, electronic, ballad,
                                      song_pop, song_waltz)}
PIECES = tuple(BUILDERS)


def build(name: str) -> Score:
    """The score of a piece, with its click part (a wood block on every beat) added."""
    if name not in BUILDERS:
        raise ValueError(f"piece {name!r}: unknown; fix: use one of {', '.join(PIECES)}")
    s = BUILDERS[name]()
    s.part(CLICK_PART, None)
    downbeats = set(s.downbeat_ticks())
    for t in s.beat_ticks():
        s.add(CLICK_PART, t, TPB // 8, WOOD_HI if t in downbeats else WOOD_LO, 110)
    return s


# --- rendering -------------------------------------------------------------------------------

def find_soundfont() -> Path | None:
    for folder in SOUNDFONT_DIRS:
        for name in SOUNDFONT_NAMES:
            if (folder / name).exists():
                return (folder / name).resolve()
    return None


def missing_tools() -> str | None:
    """``None`` when the corpus can render, else what is missing and how to install it."""
    if shutil.which("fluidsynth") is None:
        return f"the fluidsynth CLI is not on PATH; {INSTALL_FIX}"
    if find_soundfont() is None:
        return f"no General MIDI SoundFont in {', '.join(map(str, SOUNDFONT_DIRS))}; {INSTALL_FIX}"
    return None


def _fluidsynth(midi: bytes, out: Path) -> None:
    reason = missing_tools()
    if reason:
        raise RuntimeError(f"music corpus: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "piece.mid"
        mid.write_bytes(midi)
        wav = Path(tmp) / "out.wav"
        proc = subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(SAMPLE_RATE),
                               str(find_soundfont()), str(mid)],
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not wav.exists():
            raise RuntimeError(f"music corpus: fluidsynth failed rendering {out.name} "
                               f"(exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        shutil.move(str(wav), out)


def _font_key() -> str:
    font = find_soundfont()
    return f"{font.name}:{font.stat().st_size}" if font else "none"


def onset_s(y: np.ndarray, sr: int, near_s: float, threshold: float = 0.1) -> float:
    """First time within ``near_s`` +- 100 ms the signal reaches ``threshold`` of its peak there:
    the start of an isolated attack (clicks must be more than 100 ms apart)."""
    a = max(0, int((near_s - 0.1) * sr))
    seg = np.abs(y[a: int((near_s + 0.1) * sr)])
    return (a + int(np.argmax(seg >= threshold * seg.max()))) / sr


def render_latency_s(folder: str | Path) -> float:
    """FluidSynth's start latency with this SoundFont: the median delay from a wood block's MIDI
    time to the first sample at 10 % of its peak, over clicks at several times (cached)."""
    folder = Path(folder)
    cache = folder / f"fluidsynth_latency-{hashlib.sha1(_font_key().encode()).hexdigest()[:10]}.json"
    if cache.exists():
        return float(json.loads(cache.read_text())["latency_s"])
    s = Score("latency", "", "", "4/4", CLICK_PART)
    s.tempo(0, 120.0)
    s.part(CLICK_PART, None)
    times_s = []
    for k in range(8):
        t0, b = s.bar(4, 4, 4)
        s.add(CLICK_PART, t0 + (k % 4) * b // 4 if k else t0, TPB // 8, WOOD_HI, 110)
        times_s.append(float(s.ticks_to_s([s.notes[-1][1]])[0]))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "click.wav"
        _fluidsynth(s.midi_bytes([CLICK_PART]), wav)
        y, sr = sf.read(wav, always_2d=True)
    mono = np.abs(y).max(axis=1)
    delays = [onset_s(mono, sr, t) - t for t in times_s]
    latency = float(np.median(delays))
    tmp_path = cache.with_suffix(".tmp")
    tmp_path.write_text(json.dumps({"latency_s": latency, "delays_s": delays, "font": _font_key()}))
    os.replace(tmp_path, cache)
    return latency


@dataclass(frozen=True)
class Piece:
    """A rendered piece and its truth (seconds in the WAV, FluidSynth's latency included)."""

    name: str
    description: str
    wav_path: Path
    parts: tuple[str, ...]
    duration_s: float
    tempo_label: str
    meter: str
    beats_s: list[float]
    downbeats_s: list[float]
    sections: list[Section]
    latency_s: float
    beat_part: str
    has_drums: bool

    def truth(self) -> dict:
        out = asdict(self)
        out["wav_path"] = str(self.wav_path)
        return out


def render(name: str, folder: str | Path, parts: Sequence[str] | None = None) -> Piece:
    """Render piece ``name`` (all its instruments, or only ``parts``) into ``folder`` (cached)."""
    s = build(name)
    chosen = tuple(p for p in s.parts if p != CLICK_PART) if parts is None else tuple(parts)
    unknown = [p for p in chosen if p not in s.parts]
    if unknown:
        raise ValueError(f"parts {unknown}: not in piece {name!r}; fix: use some of {list(s.parts)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    latency = render_latency_s(folder)
    midi = s.midi_bytes(chosen)
    end_s = float(s.ticks_to_s([s.end_tick])[0]) + TAIL_S
    key = hashlib.sha1(midi + _font_key().encode() + str(SAMPLE_RATE).encode()).hexdigest()[:12]
    wav = folder / f"{name}-{'+'.join(chosen) if parts is not None else 'full'}-{key}.wav"
    if not wav.exists():
        raw = folder / f".{wav.stem}.raw.wav"
        _fluidsynth(midi, raw)
        y, sr = sf.read(raw, always_2d=True, dtype="float32")
        n = int(round(end_s * sr))
        y = np.pad(y, ((0, max(0, n - len(y))), (0, 0)))[:n]
        y *= PEAK / max(float(np.abs(y).max()), 1e-9)  # mastered level: peak at -1 dBFS
        tmp = wav.with_name(f".{wav.name}.tmp.wav")
        sf.write(tmp, y, sr, subtype="PCM_16")
        os.replace(tmp, wav)
        raw.unlink()
        (folder / f"{name}.mid").write_bytes(s.midi_bytes([p for p in s.parts if p != CLICK_PART]))
    beats = s.ticks_to_s(s.beat_ticks()) + latency
    downbeats = s.ticks_to_s(s.downbeat_ticks()) + latency
    bounds = [*s.ticks_to_s([t for t, _ in s.section_ticks]) + latency, end_s]
    bounds[0] = 0.0
    sections = [Section(round(float(a), 6), round(float(b), 6), label)
                for a, b, (_, label) in zip(bounds, bounds[1:], s.section_ticks, strict=False)]
    piece = Piece(name=name, description=s.description, wav_path=wav, parts=chosen,
                  duration_s=round(end_s, 6), tempo_label=s.tempo_label, meter=s.meter,
                  beats_s=[round(float(t), 6) for t in beats],
                  downbeats_s=[round(float(t), 6) for t in downbeats], sections=sections,
                  latency_s=latency, beat_part=s.beat_part, has_drums="drums" in s.parts)
    truth = folder / f"{wav.stem}.json"
    if not truth.exists():
        truth.write_text(json.dumps(piece.truth(), indent=1))
    return piece


def corpus(folder: str | Path) -> list[Piece]:
    """Every piece, rendered in full (cached in ``folder``)."""
    return [render(name, folder) for name in PIECES]
