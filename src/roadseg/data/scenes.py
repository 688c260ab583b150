"""Drawing synthetic road scenes: a perspective street (sky, a road with lane markings running to a
vanishing point, sidewalks, building facades, walls, fences, vegetation and terrain beside it, and
vehicles, pedestrians, poles, signs and traffic lights placed by depth, and optionally the ego
vehicle's hood across the bottom, labelled Vehicles as CARLA's camera sees it) under random colours,
textures, shadows, lighting and noise, with its CARLA class id for every pixel.

Usage: ``rgb, ids = render_scene(np.random.default_rng(0), size=(480, 640), hood=1.0)``
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .scene_objects import C, Canvas, ego_hood, pedestrian, pole, vehicle

class Street:
    """The perspective geometry: a vanishing point and lines from it to the bottom edge."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.h, self.w = h, w
        self.horizon = h * rng.uniform(0.36, 0.52)
        self.vx = w * (0.5 + rng.uniform(-0.15, 0.15))
        centre = w * (0.5 + rng.uniform(-0.2, 0.2))
        half = w * rng.uniform(0.45, 0.85)
        walk = w * rng.uniform(0.25, 0.6)
        # x at the bottom edge of: road edges, sidewalk outer edges
        self.road_l, self.road_r = centre - half, centre + half
        self.walk_l, self.walk_r = self.road_l - walk, self.road_r + walk
        self.centre = centre

    def at(self, x_bottom: float, t: float) -> tuple[float, float]:
        """The point at depth t (0 = vanishing point, 1 = bottom edge) of the line to x_bottom."""
        return self.vx + t * (x_bottom - self.vx), self.horizon + t * (self.h - self.horizon)

    @staticmethod
    def depths(rng: np.random.Generator, n: int) -> np.ndarray:
        """n depth stops from far to near, roughly even in world distance."""
        z = np.sort(rng.uniform(0.0, 1.0, n - 1))
        return np.concatenate([[0.02], 0.02 + 1.2 * (1 - (1 - z) ** 2) * 0.98, [1.25]])


def _sky(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    kind = rng.integers(3)
    top, low = [((60, 110, 200), (170, 200, 235)), ((150, 150, 160), (205, 205, 210)),
                ((90, 90, 160), (240, 170, 110))][kind]
    top, low = canvas.color(top, 20), canvas.color(low, 20)
    rows = int(street.horizon) + 2
    ramp = np.linspace(0, 1, rows)[:, None, None]
    grad = (np.asarray(top) * (1 - ramp) + np.asarray(low) * ramp).astype(np.uint8)
    canvas.image.paste(Image.fromarray(np.repeat(grad, canvas.w, axis=1)), (0, 0))
    canvas.mask.paste(C["sky"], (0, 0, canvas.w, rows))
    for _ in range(rng.integers(0, 5)):  # clouds are sky too
        cx, cy = rng.uniform(0, canvas.w), rng.uniform(0, street.horizon * 0.7)
        rx, ry = rng.uniform(30, 120), rng.uniform(8, 25)
        canvas.draw_i.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=canvas.color((235, 235, 240), 12))


def _skyline(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    """Distant buildings, trees and sometimes a bridge along the horizon."""
    x = -rng.uniform(0, 40)
    while x < canvas.w:
        bw = rng.uniform(25, 110)
        top = street.horizon - rng.uniform(0.04, 0.3) * canvas.h
        if rng.random() < 0.25:
            canvas.ellipse(x, top, x + bw, street.horizon + 10, C["vegetation"], canvas.color((60, 110, 50), 30))
        else:
            canvas.rect(x, top, x + bw, street.horizon + 5, C["building"], canvas.color((130, 120, 115), 50))
        x += bw * rng.uniform(0.7, 1.1)
    if rng.random() < 0.15:
        y = street.horizon - rng.uniform(0.12, 0.25) * canvas.h
        col = canvas.color((120, 115, 105), 20)
        canvas.rect(0, y, canvas.w, y + rng.uniform(10, 25), C["bridge"], col)
        for px in rng.uniform(0, canvas.w, 3):
            canvas.rect(px, y, px + 12, street.horizon + 4, C["bridge"], col)


def _ground(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    h, w = canvas.h, canvas.w
    cls = C["terrain"] if rng.random() < 0.5 else C["ground"]
    base = (110, 130, 70) if cls == C["terrain"] else (120, 100, 80)
    canvas.rect(0, street.horizon, w, h, cls, canvas.color(base, 25))
    if rng.random() < 0.1:  # water beyond one side
        side = street.walk_l if rng.random() < 0.5 else street.walk_r
        edge = -w if side < street.vx else 2 * w
        canvas.poly([street.at(side, 0.0), street.at(side, 1.3), (edge, h), (edge, street.horizon)],
                    C["water"], canvas.color((50, 80, 120), 20))
    road_col = canvas.color((85, 85, 90), 25)
    walk_col = canvas.color((165, 155, 150), 30)
    for outer, inner in ((street.walk_l, street.road_l), (street.walk_r, street.road_r)):
        canvas.poly([street.at(outer, 0), street.at(outer, 1.3), street.at(inner, 1.3), street.at(inner, 0)],
                    C["sidewalk"], walk_col)
    canvas.poly([street.at(street.road_l, 0), street.at(street.road_l, 1.3),
                 street.at(street.road_r, 1.3), street.at(street.road_r, 0)], C["road"], road_col)
    if rng.random() < 0.12:  # tram rails down the road
        for off in (-0.12, 0.12):
            x = street.centre + off * (street.road_r - street.road_l)
            canvas.poly([street.at(x - 6, 0), street.at(x - 6, 1.3), street.at(x + 6, 1.3), street.at(x + 6, 0)],
                        C["rail"], canvas.color((120, 110, 100), 15))


def _lane_lines(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    col = canvas.color((235, 235, 225), 15) if rng.random() < 0.7 else canvas.color((230, 200, 60), 15)
    lanes = [0.5] if rng.random() < 0.6 else [1 / 3, 2 / 3]
    width = canvas.w * rng.uniform(0.012, 0.025)
    for frac in lanes:
        x = street.road_l + frac * (street.road_r - street.road_l)
        t, dash = 0.03, rng.uniform(0.05, 0.09)
        while t < 1.3:
            t1 = t + dash * (0.3 + t)
            canvas.poly([street.at(x - width, t), street.at(x - width, t1), street.at(x + width, t1),
                         street.at(x + width, t)], C["roadline"], col)
            t = t1 + dash * (0.3 + t) * rng.uniform(0.8, 1.4)
    if rng.random() < 0.5:  # solid edge lines
        for x in (street.road_l + 1.5 * width, street.road_r - 1.5 * width):
            canvas.poly([street.at(x - width * 0.6, 0.03), street.at(x - width * 0.6, 1.3),
                         street.at(x + width * 0.6, 1.3), street.at(x + width * 0.6, 0.03)], C["roadline"], col)


def _roadside(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    """Facades, walls, fences, hedges and guard rails along both sidewalks, far to near."""
    for outer, side in ((street.walk_l, -1), (street.walk_r, 1)):
        stops = Street.depths(rng, int(rng.integers(3, 7)))
        height = rng.uniform(0.35, 1.1) * canvas.h
        for t0, t1 in zip(stops[:-1], stops[1:]):
            kind = rng.choice(["building", "building", "wall", "vegetation", "fence", "open"], p=[.3, .2, .12, .18, .1, .1])
            if kind == "open":
                continue
            x0, y0 = street.at(outer, t0)
            x1, y1 = street.at(outer, t1)
            tall = {"building": 1.0, "wall": 0.18, "vegetation": 0.6, "fence": 0.12}[kind] * height
            tall *= rng.uniform(0.7, 1.2)
            quad = [(x0, y0), (x1, y1), (x1, y1 - tall * t1), (x0, y0 - tall * t0)]
            base = {"building": (140, 120, 105), "wall": (150, 145, 130), "vegetation": (55, 105, 45),
                    "fence": (110, 95, 80)}[kind]
            col = canvas.color(base, 45 if kind == "building" else 25)
            canvas.poly(quad, C[kind], col)
            if kind == "building":
                _windows(canvas, quad, col, rng)
            elif kind == "fence":
                for k in range(1, 10):
                    s = k / 10
                    xa, ya = x0 + s * (x1 - x0), y0 + s * (y1 - y0)
                    th = tall * (t0 + s * (t1 - t0))
                    canvas.draw_i.line([(xa, ya), (xa, ya - th)], fill=tuple(max(c - 40, 0) for c in col), width=2)
        if rng.random() < 0.3:  # guard rail along the road edge
            inner = street.road_l if side < 0 else street.road_r
            t0, t1 = 0.05, rng.uniform(0.5, 1.3)
            rail = [street.at(inner, t0), street.at(inner, t1)]
            hh = canvas.h * 0.05
            canvas.poly([rail[0], rail[1], (rail[1][0], rail[1][1] - hh * t1), (rail[0][0], rail[0][1] - hh * t0)],
                        C["guardrail"], canvas.color((175, 175, 180), 15))


def _windows(canvas: Canvas, quad, col, rng: np.random.Generator) -> None:
    dark = tuple(max(c - 60, 0) for c in col)
    (xa, ya), (xb, yb), (xc, yc), (xd, yd) = quad
    for i in np.linspace(0.15, 0.85, int(rng.integers(2, 5))):
        for j in np.linspace(0.15, 0.85, int(rng.integers(2, 6))):
            bx, by = xa + i * (xb - xa), ya + i * (yb - ya)
            tx, ty = xd + i * (xc - xd), yd + i * (yc - yd)
            cx, cy = bx + j * (tx - bx), by + j * (ty - by)
            s = abs(xb - xa) * 0.05 + 1
            canvas.draw_i.rectangle([cx - s, cy - 1.5 * s, cx + s, cy + 1.5 * s], fill=dark)


def _props(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    """Vehicles on the road, pedestrians, poles and street furniture on the sidewalks, far to near."""
    items = []
    for _ in range(rng.integers(0, 6)):
        lane = rng.uniform(0.15, 0.85)
        items.append(("vehicle", street.road_l + lane * (street.road_r - street.road_l), rng.uniform(0.12, 0.95)))
    for _ in range(rng.integers(0, 6)):
        outer, inner = (street.walk_l, street.road_l) if rng.random() < 0.5 else (street.walk_r, street.road_r)
        items.append(("pedestrian", outer + rng.uniform(0.2, 0.8) * (inner - outer), rng.uniform(0.15, 1.0)))
    for _ in range(rng.integers(1, 6)):
        outer, inner = (street.walk_l, street.road_l) if rng.random() < 0.5 else (street.walk_r, street.road_r)
        items.append(("pole", inner + 0.15 * (outer - inner), rng.uniform(0.1, 1.0)))
    for _ in range(rng.integers(0, 3)):
        outer, inner = (street.walk_l, street.road_l) if rng.random() < 0.5 else (street.walk_r, street.road_r)
        items.append((str(rng.choice(["static", "dynamic", "other"])), outer + 0.3 * (inner - outer), rng.uniform(0.1, 1.0)))
    for kind, xb, t in sorted(items, key=lambda it: it[2]):
        x, y = street.at(xb, t)
        scale = t * canvas.h / 480
        if kind == "vehicle":
            vehicle(canvas, x, y, scale, rng)
        elif kind == "pedestrian":
            pedestrian(canvas, x, y, scale, rng)
        elif kind == "pole":
            pole(canvas, x, y, scale, rng)
        else:
            s = 50 * scale
            col = canvas.color({"static": (60, 90, 60), "dynamic": (150, 110, 60), "other": (120, 60, 120)}[kind], 25)
            canvas.rect(x - s * 0.4, y - s, x + s * 0.4, y, C[kind], col)


def _lighting(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Shadows, per-class texture, a smooth light field, colour cast and sensor noise."""
    h, w = canvas.h, canvas.w
    img = np.asarray(canvas.image, dtype=np.float32)
    mask = np.asarray(canvas.mask)
    shade = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(shade)
    for _ in range(rng.integers(0, 4)):
        pts = [(float(rng.uniform(-0.2, 1.2) * w), float(rng.uniform(0.3, 1.1) * h)) for _ in range(4)]
        d.polygon(pts, fill=int(rng.uniform(120, 200)))
    shade_arr = np.asarray(shade.filter(ImageFilter.GaussianBlur(3)), dtype=np.float32)[:, :, None] / 255
    strength = np.zeros(256, np.float32)
    strength[[C["vegetation"], C["terrain"], C["ground"]]] = 0.25
    strength[[C["road"], C["sidewalk"], C["building"], C["wall"]]] = 0.08
    coarse = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    coarse = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BILINEAR))[:h, :w]
    texture = 1 + strength[mask] * coarse
    field = rng.normal(0, 1, (3, 4)).astype(np.float32)
    light = np.asarray(Image.fromarray(field, mode="F").resize((w, h), Image.BICUBIC))
    light = 1 + 0.12 * light
    gain = rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    img = img * shade_arr * texture[:, :, None] * light[:, :, None] * gain
    img += rng.normal(0, rng.uniform(2, 9), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_scene(rng: np.random.Generator, size: tuple[int, int] = (480, 640),
                 hood: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One frame: an HxWx3 uint8 RGB image and its HxW uint8 CARLA class ids; with probability `hood`
    the ego vehicle's hood across the bottom (hood=0 draws no random number for it, so frames stay
    as they were without it)."""
    h, w = size
    canvas, street = Canvas(h, w, rng), Street(h, w, rng)
    _sky(canvas, street, rng)
    _skyline(canvas, street, rng)
    _ground(canvas, street, rng)
    _lane_lines(canvas, street, rng)
    _roadside(canvas, street, rng)
    _props(canvas, street, rng)
    if hood > 0 and rng.random() < hood:
        ego_hood(canvas, rng)
    return _lighting(canvas, rng), np.asarray(canvas.mask).copy()
