"""Caption sources and settings (video_assets/captions.py): LRC (good and malformed), plain lyrics
on beats, transcript words grouped into lines, voiceover lines, scene captions, source choice."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from video_assets.captions import (
    CaptionSettings,
    LyricsError,
    from_scenes,
    from_transcript,
    from_voiceover,
    has_timestamps,
    parse_lrc,
    parse_lyrics,
    select_source,
    spread_plain_lyrics,
    vocal_span_s,
)
from video_assets.media.subtitles import PRESETS, resolve_style
from video_assets.schemas import Section, Word

LRC = """\ufeff[ti:A Song]
[ar:Someone]
[by:me]

[00:01.50]First line here
[00:04.00][00:12.25]The chorus comes back
[00:07.5]Third, with one digit
[00:09.00]
"""


def test_lrc_lines_end_where_the_next_starts_and_the_last_at_the_songs_end():
    caps = parse_lrc(LRC, duration_s=20.0)
    assert [(c.start_s, c.end_s, c.text) for c in caps] == [
        (1.5, 4.0, "First line here"),
        (4.0, 7.5, "The chorus comes back"),
        (7.5, 9.0, "Third, with one digit"),  # the blank timed line at 9 s ends it
        (12.25, 20.0, "The chorus comes back"),  # a second timestamp repeats the line
    ]
    assert all(not c.words for c in caps)


def test_enhanced_lrc_gives_each_word_its_time():
    caps = parse_lrc("[00:02.00]<00:02.00>Hello <00:02.40>bright <00:03.10>world <00:04.00>\n"
                     "[00:05.00]Lean <00:05.50>on the line\n", duration_s=8.0)
    first, second = caps
    assert [(w.text, w.start_s, w.end_s) for w in first.words] == [
        ("Hello", 2.0, 2.4), ("bright", 2.4, 3.1), ("world", 3.1, 4.0)]
    assert first.text == "Hello bright world"
    # the first word leans on the line's time; words between two tags share their span evenly
    assert [(w.text, w.start_s, w.end_s) for w in second.words] == [
        ("Lean", 5.0, 5.5), ("on", 5.5, 6.333), ("the", 6.333, 7.167), ("line", 7.167, 8.0)]


def test_lrc_offset_moves_every_time_sooner():
    caps = parse_lrc("[offset:+500]\n[00:02.00]<00:02.00>a <00:03.00>b\n", duration_s=6.0)
    assert caps[0].start_s == 1.5
    assert [w.start_s for w in caps[0].words] == [1.5, 2.5]


@pytest.mark.parametrize(("text", "says"), [
    ("[00:01.00]ok\n[00:7a.00]bad time", "line 2"),
    ("[00:01.00]ok\n[01:75.00]too many seconds", "75 seconds"),
    ("[00:01.00]ok\njust words without a time", "has no [mm:ss.xx] time"),
    ("[00:01.00]ok\n[00:02.00 unclosed", "never closed"),
    ("[00:02.00]<00:01.00>before <00:02.50>line", "outside its line"),
    ("[00:02.00]<00:03.00>back <00:02.50>wards", "before the word before it"),
    ("[00:02.00]a <00:02.50 word", "without its pair"),
    ("[00:30.00]after the end", "after the song's end"),
    ("[ar:only metadata]", "no timed line"),
])
def test_malformed_lrc_names_the_line_and_the_fix(text, says):
    with pytest.raises(LyricsError) as err:
        parse_lrc(text, duration_s=10.0, name="song.lrc")
    message = str(err.value)
    assert says in message and "fix:" in message and "song.lrc" in message


def test_plain_lyrics_are_spread_evenly_on_beats_over_the_vocal_span():
    beats = [i * 0.5 for i in range(0, 41)]  # 120 bpm over 20 s
    caps = spread_plain_lyrics("one\n\n two  words \nthree\nfour\n", beats, (4.0, 16.0))
    assert [c.text for c in caps] == ["one", "two words", "three", "four"]
    assert [c.start_s for c in caps] == [4.0, 7.0, 10.0, 13.0]  # every 3 s, each on a beat
    assert [c.end_s for c in caps] == [7.0, 10.0, 13.0, 16.0]


def test_plain_lyrics_snap_to_the_nearest_beat():
    beats = [0.4 + i * 0.7 for i in range(30)]
    caps = spread_plain_lyrics("a\nb\nc", beats, (0.0, 9.0))
    # even shares start at 0, 3 and 6 s; the nearest beats are 0.4, 3.2 and 6.0 s
    assert [c.start_s for c in caps] == [0.4, 3.2, 6.0]
    assert caps[-1].end_s == 9.0


def test_parse_lyrics_tells_lrc_from_plain_text():
    assert has_timestamps(LRC) and not has_timestamps("just [a] song\nno times")
    plain = parse_lyrics("la la\nlo lo", duration_s=10.0, beats_s=[0.0, 5.0])
    assert [(c.start_s, c.end_s) for c in plain] == [(0.0, 5.0), (5.0, 10.0)]


def test_vocal_span_leaves_out_the_intro_and_the_outro():
    sections = [Section(start_s=0, end_s=8, label="intro", energy=0.2),
                Section(start_s=8, end_s=30, label="verse", energy=0.5),
                Section(start_s=30, end_s=50, label="chorus", energy=1.0),
                Section(start_s=50, end_s=60, label="outro", energy=0.3)]
    assert vocal_span_s(sections, 60.0) == (8, 50)
    assert vocal_span_s([], 60.0) == (0.0, 60.0)


def _words(*spec):
    return [Word(word=w, start_s=a, end_s=b) for w, a, b in spec]


def test_transcript_words_break_into_lines_at_pauses_sentences_and_length():
    words = _words(("I", 1.0, 1.2), ("walk", 1.2, 1.5), ("alone.", 1.5, 2.0),  # sentence end
                   ("Into", 2.1, 2.3), ("the", 2.3, 2.4), ("night", 2.4, 2.9),
                   ("again", 4.0, 4.5))  # after a 1.1 s pause
    caps = from_transcript(words, max_chars=40)
    assert [c.text for c in caps] == ["I walk alone.", "Into the night", "again"]
    assert caps[0].end_s == 2.1  # the linger is cut where the next line starts
    assert caps[1].end_s == 3.9  # 2.9 + 1.0 s linger, before the next line at 4.0
    assert [w.start_s for w in caps[1].words] == [2.1, 2.3, 2.4]
    long = from_transcript(_words(*[(f"word{i}", i * 0.3, i * 0.3 + 0.25) for i in range(12)]),
                           max_chars=20)
    assert all(len(c.text) <= 20 for c in long) and len(long) > 1


def test_voiceover_lines_show_while_spoken_and_stop_at_the_next():
    caps = from_voiceover([{"index": 1, "start_s": 5.15, "text": "Second line", "duration_s": 9.0},
                           {"index": 0, "start_s": 0.15, "text": "First  line", "duration_s": 2.5},
                           {"start_s": 12.0, "end_s": 13.0, "text": " "}])
    assert [(c.start_s, c.end_s, c.text) for c in caps] == [(0.15, 2.65, "First line"),
                                                            (5.15, 12.0, "Second line")]


def test_scene_captions_cover_their_scenes_and_empty_ones_show_nothing():
    class S:
        def __init__(self, a, b, text):
            self.start_s, self.end_s, self.caption = a, b, text

    caps = from_scenes([S(0, 2, "Hook: buy it"), S(2, 4, "  "), S(4, 6, "Now")])
    assert [(c.start_s, c.end_s, c.text) for c in caps] == [(0, 2, "Hook: buy it"), (4, 6, "Now")]


def test_auto_source_uses_the_words_that_exist_and_none_means_no_captions():
    kw = {"lyrics_file": False, "transcript_words": True, "voiceover_lines": True}
    assert select_source("auto", **kw) == "transcript"
    assert select_source("auto", **{**kw, "lyrics_file": True}) == "lyrics"
    assert select_source("auto", lyrics_file=False, transcript_words=False, voiceover_lines=True) \
        == "voiceover"
    assert select_source("auto", lyrics_file=False, transcript_words=False,
                         voiceover_lines=False) is None
    assert select_source("off", **kw) is None
    assert select_source("custom", **kw) == "custom"


def test_settings_override_any_preset_field():
    settings = CaptionSettings(source="lyrics", style="minimal", highlight="#FF0000", max_lines=1)
    style = resolve_style(settings, "default")
    assert style.highlight == "#ff0000" and style.max_lines == 1
    assert style.size == PRESETS["minimal"].size  # the rest is the preset's


def test_flavor_picks_the_preset_when_the_request_does_not():
    assert resolve_style(CaptionSettings(), "energetic") == PRESETS["bold_pop"]
    assert resolve_style(CaptionSettings(), "default", mode="ad") == PRESETS["lower_third"]


@pytest.mark.parametrize(("fields", "says"), [
    ({"style": "comic_sans"}, "not a preset"),
    ({"highlight": "yellow"}, "#rrggbb"),
    ({"max_lines": 9}, "max_lines"),
    ({"sauce": "ketchup"}, "sauce"),
    ({"source": "subtitles"}, "source"),
])
def test_bad_settings_say_which_field(fields, says):
    with pytest.raises(ValidationError) as err:
        CaptionSettings(**fields)
    assert says in str(err.value)
