"""Font coverage (video_assets/media/fonts.py) against the fonts really installed: the faces
fontconfig lists, their character maps, and the package named when nothing covers a text."""

from __future__ import annotations

import pytest

from video_assets.media.fonts import (
    FAMILY_PACKAGES,
    FontCoverageError,
    check_text_coverage,
    covering_face,
    face_for,
    installed_faces,
    missing_glyphs,
    package_for,
)

ADLAM = "\U0001e900\U0001e901"  # a script only fonts-noto-core covers (not installed by CI)
CJK = "你好世界"


def _covered(text: str) -> bool:
    try:
        covering_face(text, "DejaVu Sans")
    except FontCoverageError:
        return False
    return True


def test_bold_and_regular_faces_are_different_files():
    bold, regular = face_for("DejaVu Sans", bold=True), face_for("dejavu sans", bold=False)
    assert bold.bold and not regular.bold and not bold.italic
    assert bold.path.endswith("DejaVuSans-Bold.ttf") and regular.path.endswith("DejaVuSans.ttf")


def test_missing_glyphs_are_the_characters_the_family_lacks():
    assert missing_glyphs("Ça déjà vu — naïve " + CJK, "DejaVu Sans") == set(CJK)
    assert missing_glyphs("مرحبا", "DejaVu Sans") == set()  # DejaVu has Arabic
    assert missing_glyphs("a\u200db\ufe0f \n", "DejaVu Sans") == set()  # joiners and selectors


def test_a_line_the_family_covers_keeps_the_family():
    assert covering_face("Ça déjà vu", "DejaVu Sans", bold=True).family == "DejaVu Sans"


def test_a_cjk_line_is_drawn_in_a_face_that_has_every_character():
    if not _covered(CJK):
        pytest.skip("no CJK font installed; fix: apt-get install fonts-noto-cjk (.ci/run does)")
    face = covering_face(CJK + " hello", "DejaVu Sans", bold=True)
    assert "CJK" in face.family and face.bold


def test_emoji_are_drawn_from_an_outline_font():
    if not _covered("🔥🎵"):
        pytest.skip("no outline emoji font installed; fix: apt-get install fonts-symbola (.ci/run does)")
    assert covering_face("fire 🔥🎵", "DejaVu Sans").family == "Symbola"


def test_text_no_installed_font_covers_fails_naming_the_package():
    assert not _covered(ADLAM), "an Adlam font is installed: pick another uncovered script"
    with pytest.raises(FontCoverageError) as err:
        check_text_coverage("fine line\nhello " + ADLAM, "DejaVu Sans")
    message = str(err.value)
    assert "fonts-noto-core" in message and "U+1E900" in message and "fix:" in message


def test_coverage_check_passes_text_the_installed_fonts_draw():
    check_text_coverage("Ça déjà vu\nمرحبا بالعالم\n", "DejaVu Sans", bold=True)


def test_each_script_maps_to_the_debian_package_that_covers_it():
    assert {package_for(c) for c in "你かカ한！"} == {"fonts-noto-cjk"}
    assert package_for("🔥") == "fonts-symbola"
    assert package_for("\u0905") == "fonts-noto-core"  # Devanagari


def test_a_family_that_is_not_installed_names_its_package():
    installed = {f.family.lower() for f in installed_faces()}
    absent = [family for family in FAMILY_PACKAGES if family not in installed]
    if not absent:
        pytest.skip("every family with a known package is installed")
    with pytest.raises(FontCoverageError) as err:
        face_for(absent[0])
    assert FAMILY_PACKAGES[absent[0]] in str(err.value)
    with pytest.raises(FontCoverageError, match="fc-list"):
        face_for("No Such Family 1234")


def test_a_font_installed_while_the_process_runs_is_found_without_a_restart(tmp_path, monkeypatch):
    from fontTools.ttLib import TTFont

    monkeypatch.setenv("HOME", str(tmp_path))  # fontconfig reads ~/.fonts, and so does the stamp
    family = "Caption Test Family"
    with pytest.raises(FontCoverageError, match="not installed"):
        face_for(family)
    font = TTFont(face_for("DejaVu Sans").path)
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = family
    (tmp_path / ".fonts").mkdir()
    font.save(tmp_path / ".fonts" / "captiontest.ttf")
    assert face_for(family).path == str(tmp_path / ".fonts" / "captiontest.ttf")
