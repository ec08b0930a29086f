"""Installed fonts and what they cover, through fontconfig (the library libass picks fonts with
in ffmpeg's ``ass`` filter) and fontTools (a face's character map).

``face_for(family, bold)`` is the file fontconfig holds for a family; ``covering_face(text, family,
bold)`` the face a caption line is drawn in: the family's when it has every character of the
line, else the first installed face that has them all (the same weight first, then the faces of
``FALLBACK_FAMILIES`` in order, then by name). Captions name that face's family for the whole
line, so libass draws exactly the font the layout measured. ``missing_glyphs`` lists what a
family lacks; ``check_text_coverage`` raises ``FontCoverageError`` naming the Debian package that
would cover what no installed font does (``fonts-noto-cjk``, ...), so that admission refuses text
that would render as empty boxes. Fonts come from packages only: nothing is downloaded.

Faces with colour bitmaps only (CBDT/sbix emoji fonts) are left out: libass draws outlines.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass

from fontTools.ttLib import TTFont

FALLBACK_FAMILIES = ("DejaVu Sans", "Noto Sans", "Noto Sans CJK SC", "Noto Sans Arabic", "Symbola")
FC_BOLD = 200  # fontconfig's weight scale: regular 80, medium 100, bold 200
FAMILY_PACKAGES = {  # family (lower case) -> the Debian package that installs it
    "dejavu sans": "fonts-dejavu-core", "dejavu serif": "fonts-dejavu-core",
    "liberation sans": "fonts-liberation", "liberation serif": "fonts-liberation",
    "noto sans": "fonts-noto-core", "noto sans arabic": "fonts-noto-core",
    "noto sans cjk sc": "fonts-noto-cjk", "noto sans cjk jp": "fonts-noto-cjk",
    "noto sans cjk kr": "fonts-noto-cjk", "noto sans cjk tc": "fonts-noto-cjk",
    "symbola": "fonts-symbola",
}


class FontCoverageError(ValueError):
    """Text that no installed font can draw, or a font family that is not installed."""


@dataclass(frozen=True, order=True)
class FontFace:
    family: str
    path: str
    index: int  # the face's number in a collection (.ttc)
    weight: int  # fontconfig's scale
    italic: bool
    width: int = 100  # fontconfig's scale: 100 normal, 87 semi-condensed, 75 condensed

    @property
    def bold(self) -> bool:
        return self.weight >= FC_BOLD - 20


def _fc(args: list[str]) -> str:
    exe = shutil.which(args[0])
    if exe is None:
        raise FontCoverageError(f"{args[0]} not found: fonts are found through fontconfig; "
                                "fix: install the Debian package fontconfig")
    return subprocess.run([exe, *args[1:]], capture_output=True, text=True, check=True,
                          timeout=60).stdout


_FORMAT = "%{family[0]}\t%{file}\t%{index}\t%{weight}\t%{slant}\t%{width}\n"


FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")


def _fonts_stamp() -> tuple[tuple[str, int], ...]:
    """The modification times of the font folders and their subfolders: a package installed
    while a process runs (the sensor, the code server) changes it, and the lists are read again."""
    stamp = []
    for top in FONT_DIRS:
        root = os.path.expanduser(top)
        if not os.path.isdir(root):
            continue
        stamp.append((root, os.stat(root).st_mtime_ns))
        with os.scandir(root) as entries:
            stamp.extend((e.path, e.stat().st_mtime_ns) for e in entries if e.is_dir())
    return tuple(sorted(stamp))


def _faces(pattern: str) -> tuple[FontFace, ...]:
    """The installed faces fontconfig lists for ``pattern`` (``:charset=...``: those covering
    the characters), leaving out those without outlines."""
    return _faces_listed(pattern, _fonts_stamp())


@functools.lru_cache(maxsize=512)
def _faces_listed(pattern: str, _stamp: tuple) -> tuple[FontFace, ...]:
    out = []
    for line in _fc(["fc-list", "--format", _FORMAT, pattern]).splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or not parts[1]:
            continue
        family, path, index, weight, slant, width = parts
        out.append(FontFace(family=family, path=path, index=int(index or 0),
                            weight=int(float(weight or 80)), italic=int(slant or 0) != 0,
                            width=int(float(width or 100))))
    return tuple(sorted(f for f in out if _outlines(f.path, f.index)))


def installed_faces() -> tuple[FontFace, ...]:
    """Every installed face with outlines (fontconfig's list)."""
    return _faces(":")


@functools.cache
def _outlines(path: str, index: int) -> bool:
    try:
        font = TTFont(path, fontNumber=index, lazy=True)
    except Exception:  # noqa: BLE001 - a file fontTools cannot read is no use to us either
        return False
    return "glyf" in font or "CFF " in font or "CFF2" in font


@functools.cache
def face_cmap(face: FontFace) -> frozenset[int]:
    """The code points a face has glyphs for."""
    font = TTFont(face.path, fontNumber=face.index, lazy=True)
    return frozenset(font.getBestCmap() or {})


@functools.cache
def line_height_em(face: FontFace) -> float:
    """The height libass scales to the font size, in ems: the face's Windows ascent plus descent
    (OS/2), else hhea's. A font of size ``s`` px (ASS) is drawn at ``s / line_height_em`` px/em."""
    font = TTFont(face.path, fontNumber=face.index, lazy=True)
    upem = font["head"].unitsPerEm
    os2 = font.get("OS/2")
    if os2 is not None and os2.usWinAscent + os2.usWinDescent > 0:
        return (os2.usWinAscent + os2.usWinDescent) / upem
    return (font["hhea"].ascent - font["hhea"].descent) / upem


def _preference(face: FontFace, bold: bool) -> tuple:
    return (face.italic, abs(face.weight - (FC_BOLD if bold else 80)), abs(face.width - 100))


def face_for(family: str, bold: bool = False) -> FontFace:
    """The installed face of ``family`` nearest to the weight (upright and normal width first,
    as libass picks)."""
    faces = [f for f in installed_faces() if f.family.lower() == family.lower()]
    if not faces:
        package = FAMILY_PACKAGES.get(family.lower())
        fix = f"install the Debian package {package}" if package else \
            "install the font's package, or choose an installed family (fc-list : family)"
        raise FontCoverageError(f"font family {family!r} is not installed; fix: {fix}")
    return min(faces, key=lambda f: (*_preference(f, bold), f))


def drawn_chars(text: str) -> set[str]:
    """The characters of ``text`` that need a glyph: not spaces, controls, format characters or
    variation selectors."""
    return {ch for ch in text if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")
            and not (0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF)}


def missing_glyphs(text: str, family: str, bold: bool = False) -> set[str]:
    """The characters of ``text`` the face of ``family`` has no glyph for."""
    cmap = face_cmap(face_for(family, bold))
    return {ch for ch in drawn_chars(text) if ord(ch) not in cmap}


def _covering(chars: set[str]) -> tuple[FontFace, ...]:
    if not chars:
        return installed_faces()
    return _faces(":charset=" + " ".join(f"{ord(c):x}" for c in sorted(chars)))


def covering_face(text: str, family: str, bold: bool = False) -> FontFace:
    """The face a line of ``text`` is drawn in (see the module docstring); raises
    ``FontCoverageError`` when no installed face has all its characters."""
    own = face_for(family, bold)
    chars = drawn_chars(text)
    if all(ord(c) in face_cmap(own) for c in chars):
        return own
    rank = {name.lower(): i for i, name in enumerate(FALLBACK_FAMILIES)}
    for face in sorted(_covering(chars), key=lambda f: (
            *_preference(f, bold), rank.get(f.family.lower(), len(rank)), f)):
        if all(ord(c) in face_cmap(face) for c in chars):
            return face
    raise coverage_error(text, family, bold)


def package_for(ch: str) -> str:
    """The Debian package whose fonts cover ``ch`` (the Noto families, Symbola for pictographs)."""
    cp = ord(ch)
    if (0x1100 <= cp <= 0x11FF or 0x2E80 <= cp <= 0x9FFF or 0xA960 <= cp <= 0xA97F
            or 0xAC00 <= cp <= 0xD7FF or 0xF900 <= cp <= 0xFAFF or 0xFE30 <= cp <= 0xFE4F
            or 0xFF00 <= cp <= 0xFFEF or 0x20000 <= cp <= 0x3FFFF):
        return "fonts-noto-cjk"
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF:
        return "fonts-symbola"
    return "fonts-noto-core"


def coverage_error(text: str, family: str, bold: bool = False) -> FontCoverageError:
    """What to say when no single installed face covers ``text``: the characters no face has
    at all (and their packages), or that they are spread over faces that cover one each."""
    chars = drawn_chars(text)
    nowhere = sorted(c for c in chars if not _covering({c}))
    if nowhere:
        packages = sorted({package_for(c) for c in nowhere})
        shown = "".join(nowhere[:12]) + ("..." if len(nowhere) > 12 else "")
        names = ", ".join(f"U+{ord(c):04X}" for c in nowhere[:6])
        return FontCoverageError(
            f"no installed font has a glyph for {shown!r} ({names}) in the text {text[:60]!r}; "
            f"fix: install the Debian package {' and '.join(packages)} (apt-get install "
            f"{' '.join(packages)}), or remove those characters")
    return FontCoverageError(
        f"no single installed font has every character of {text[:60]!r} (font {family!r}); fix: "
        "split the scripts into separate lines, or install a font covering them all "
        "(e.g. the Debian package fonts-noto-cjk for CJK with Latin)")


def check_text_coverage(text: str, family: str, bold: bool = False) -> None:
    """Raise ``FontCoverageError`` (naming the package to install) unless every line of ``text``
    can be drawn in one installed face: for admission, before anything is rendered."""
    for line in text.splitlines():
        if drawn_chars(line):
            covering_face(line, family, bold)
