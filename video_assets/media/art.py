"""Procedural storyboard cards (Pillow): layered scenery from a palette and a seed, with a text band
(the scene's prompt, as a real image model is given it) and a small label.

Deterministic: the same palette, seed, text, label and size give the same pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


@functools.cache
def _font_path(bold: bool) -> str | None:
    """DejaVu Sans from matplotlib's package data, found without importing matplotlib (0.2 s)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover
        return None
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf" / name
    return str(path) if path.exists() else None


def font(size_px: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = _font_path(bold)
    if path:
        return ImageFont.truetype(path, size_px)
    return ImageFont.load_default(size=size_px)


def _ridge(rng: random.Random, width: int, base_y: float, amp: float, roughness: int) -> list:
    """A silhouette line across the card: sum of a few random sines."""
    waves = [(rng.uniform(0.5, 3.5) * (k + 1), rng.uniform(0, 2 * math.pi), amp / (k + 1))
             for k in range(roughness)]
    pts = []
    for x in range(0, width + 16, 16):
        u = x / width
        y = base_y + sum(a * math.sin(2 * math.pi * f * u + p) for f, p, a in waves)
        pts.append((x, y))
    return pts


def _skyline(rng: random.Random, width: int, base_y: float, max_h: float) -> list:
    pts = [(0, base_y)]
    x = 0
    while x < width:
        w = rng.uniform(0.04, 0.12) * width
        h = rng.uniform(0.2, 1.0) * max_h
        pts += [(x, base_y - h), (x + w, base_y - h)]
        x += w
    pts.append((width, base_y))
    return pts


GLOW_SHRINK = 4  # the sun's glow is blurred at 1/4 of the card's size


def render_card(
    size: tuple[int, int],
    palette_hex: Sequence[str],
    seed: int,
    text: str,
    label: str = "",
    landscape: str = "ridges",
) -> Image.Image:
    """Draw one storyboard card: sky gradient, glowing sun, three silhouette layers, a band with
    ``text`` (at most four lines) and ``label`` above it in the top corner.

    ``landscape`` is ``"ridges"`` (hills/waves) or ``"skyline"`` (a city). Returns an RGB image.
    """
    width, height = size
    rng = random.Random(seed)
    cols = [hex_to_rgb(c) for c in palette_hex]
    sky_top, sky_bottom, accent = cols[0], cols[1], cols[2]
    far, near = cols[3 % len(cols)], cols[4 % len(cols)]
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    horizon = rng.uniform(0.45, 0.62) * height
    for y in range(height):
        t = min(1.0, y / horizon) ** 1.3
        draw.line([(0, y), (width, y)], fill=_mix(sky_top, sky_bottom, t))
    # stars / dust
    for _ in range(int(width * height / 9000)):
        x, y = rng.uniform(0, width), rng.uniform(0, horizon * 0.8)
        r = rng.choice((1, 1, 2, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_mix(sky_top, (255, 255, 255), 0.75))
    # glowing sun: the glow is drawn and blurred at a quarter of the size, then enlarged (a blur
    # this wide has no detail to lose: within 4 levels of the full-size blur, at 1/4 the cost)
    cx, cy = rng.uniform(0.25, 0.75) * width, horizon - rng.uniform(0.08, 0.25) * height
    radius = rng.uniform(0.10, 0.18) * min(width, height)
    k = GLOW_SHRINK
    glow = Image.new("RGB", (max(1, width // k), max(1, height // k)), (0, 0, 0))
    r_glow = radius * 1.8 / k
    ImageDraw.Draw(glow).ellipse([cx / k - r_glow, cy / k - r_glow, cx / k + r_glow,
                                  cy / k + r_glow], fill=accent)
    glow = glow.filter(ImageFilter.GaussianBlur(radius * 0.6 / k)).resize(
        size, Image.Resampling.BILINEAR)
    img = Image.blend(img, Image.composite(glow, img, glow.convert("L")), 0.55)
    draw = ImageDraw.Draw(img)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius],
                 fill=_mix(accent, (255, 255, 255), 0.35))
    for k in range(1, 5):  # horizontal bands across the sun
        yb = cy + radius * (0.15 + 0.2 * k)
        draw.rectangle([cx - radius, yb, cx + radius, yb + radius * 0.05 * k], fill=sky_bottom)
    # silhouettes, far to near
    layers = [(far, horizon, 0.07), (_mix(far, near, 0.5), horizon + 0.08 * height, 0.06),
              (near, horizon + 0.2 * height, 0.05)]
    for i, (colour, base, amp) in enumerate(layers):
        if landscape == "skyline" and i == 1:
            pts = _skyline(rng, width, base, 0.22 * height)
        else:
            pts = _ridge(rng, width, base, amp * height, 3 + i)
        draw.polygon([*pts, (width, height), (0, height)], fill=colour)
    # a lone figure on the nearest ridge: the subject
    fx = rng.uniform(0.3, 0.7) * width
    fy = horizon + 0.2 * height - 0.02 * height
    fh = 0.07 * height
    dark = _mix(near, (0, 0, 0), 0.6)
    draw.ellipse([fx - fh * 0.09, fy - fh, fx + fh * 0.09, fy - fh * 0.82], fill=dark)
    draw.polygon([(fx - fh * 0.12, fy - fh * 0.8), (fx + fh * 0.12, fy - fh * 0.8),
                  (fx + fh * 0.16, fy), (fx - fh * 0.16, fy)], fill=dark)
    # vignette
    vignette = Image.new("L", (width // 8, height // 8), 0)
    vdraw = ImageDraw.Draw(vignette)
    vw, vh = vignette.size
    vdraw.ellipse([-vw * 0.25, -vh * 0.15, vw * 1.25, vh * 1.15], fill=255)
    vignette = vignette.filter(ImageFilter.GaussianBlur(vw / 8)).resize(size)
    img = Image.composite(img, Image.new("RGB", size, (0, 0, 0)), vignette)
    _caption(img, text, label)
    return img


# Text stays inside the area every camera move keeps in frame: the animatic magnifies up to ~17 %
# and pans up to 3.5 % of the card, so about 11 % of each side can leave the picture.
SAFE_MARGIN = 0.13


def _wrap(text: str, face: ImageFont.ImageFont | ImageFont.FreeTypeFont, max_px: float) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(f"{lines[-1]} {word}") <= max_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _caption(img: Image.Image, text: str, label: str) -> None:
    width, height = img.size
    unit = min(width, height)
    body = font(max(12, unit // 26))
    small = font(max(10, unit // 36), bold=True)
    margin_x, margin_y = SAFE_MARGIN * width, SAFE_MARGIN * height
    lines = _wrap(text, body, width - 2 * margin_x)[:4]
    line_h = int(unit / 26 * 1.35)
    pad = unit // 30
    band_h = line_h * len(lines) + 2 * pad
    # at the top, under the camera label: the lower part of the frame is where captions go
    top = margin_y + int(unit / 36 * 1.35) + pad
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).rectangle([0, top, width, top + band_h], fill=(0, 0, 0, 150))
    img.paste(Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB"))
    draw = ImageDraw.Draw(img)
    y = top + pad
    for line in lines:
        draw.text((margin_x, y), line, font=body, fill=(245, 245, 245))
        y += line_h
    if label:
        draw.text((margin_x, margin_y), label, font=small, fill=(255, 255, 255))


def sheet_tile(path: str | Path, tile_width: int = 216) -> Image.Image:
    """One image of a contact sheet: ``tile_width`` pixels wide, its aspect kept (Lanczos,
    after an integer box reduction down to 3x the size, which looks the same and is faster)."""
    with Image.open(path) as im:
        tile_h = int(round(tile_width * im.height / im.width))
        return im.convert("RGB").resize((tile_width, tile_h), Image.Resampling.LANCZOS,
                                        reducing_gap=3.0)


def contact_sheet(tiles: Sequence[Image.Image], columns: int = 6) -> Image.Image:
    """Tiles of one size (``sheet_tile``) laid into one sheet, left to right, top to bottom."""
    if not tiles:
        raise ValueError("no images for a contact sheet")
    tile_width, tile_h = tiles[0].size
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    gap = 6
    sheet = Image.new("RGB", (cols * (tile_width + gap) + gap, rows * (tile_h + gap) + gap),
                      (18, 18, 22))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet.paste(tile, (gap + c * (tile_width + gap), gap + r * (tile_h + gap)))
    return sheet
