"""The things drawn into a synthetic scene, each with its CARLA class id: the `Canvas` that paints an
image and its mask together, vehicles, pedestrians, poles with their signs and traffic lights, and the
ego vehicle's hood (`ego_hood`). `roadseg.data.scenes` lays them out along the street.

Usage: ``canvas = Canvas(480, 640, rng); vehicle(canvas, x, y, scale, rng)``
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

C = dict(unlabeled=0, building=1, fence=2, other=3, pedestrian=4, pole=5, roadline=6, road=7,
         sidewalk=8, vegetation=9, vehicle=10, wall=11, sign=12, sky=13, ground=14, bridge=15,
         rail=16, guardrail=17, light=18, static=19, dynamic=20, water=21, terrain=22)


class Canvas:
    """Draws each shape into the RGB image and, with its class id, into the mask."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = h, w, rng
        self.image = Image.new("RGB", (w, h))
        self.mask = Image.new("L", (w, h))
        self.draw_i, self.draw_m = ImageDraw.Draw(self.image), ImageDraw.Draw(self.mask)

    def color(self, base: tuple[int, int, int], spread: int = 25) -> tuple[int, int, int]:
        return tuple(int(np.clip(c + self.rng.integers(-spread, spread + 1), 0, 255)) for c in base)

    def poly(self, pts, cls: int, color) -> None:
        pts = [(float(x), float(y)) for x, y in pts]
        self.draw_i.polygon(pts, fill=color)
        self.draw_m.polygon(pts, fill=cls)

    def rect(self, x0, y0, x1, y1, cls: int, color) -> None:
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        self.draw_i.rectangle(box, fill=color)
        self.draw_m.rectangle(box, fill=cls)

    def ellipse(self, x0, y0, x1, y1, cls: int, color) -> None:
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        self.draw_i.ellipse(box, fill=color)
        self.draw_m.ellipse(box, fill=cls)


def vehicle(canvas: Canvas, x: float, y: float, scale: float, rng: np.random.Generator) -> None:
    w, h = 180 * scale * rng.uniform(0.85, 1.2), 95 * scale * rng.uniform(0.9, 1.4)
    body = canvas.color(tuple(int(v) for v in rng.integers(20, 235, 3)), 0)
    v = C["vehicle"]
    canvas.rect(x - w / 2, y - h * 0.65, x + w / 2, y - h * 0.12, v, body)
    canvas.poly([(x - w * 0.38, y - h * 0.65), (x - w * 0.28, y - h), (x + w * 0.28, y - h), (x + w * 0.38, y - h * 0.65)], v, body)
    canvas.rect(x - w * 0.3, y - h * 0.95, x + w * 0.3, y - h * 0.68, v, canvas.color((40, 50, 60), 15))
    for wx in (x - w * 0.42, x + w * 0.3):
        canvas.rect(wx, y - h * 0.2, wx + w * 0.12, y, v, (20, 20, 20))
    for lx in (x - w * 0.45, x + w * 0.37):
        canvas.draw_i.rectangle([lx, y - h * 0.45, lx + w * 0.08, y - h * 0.36], fill=(200, 30, 30))


def pedestrian(canvas: Canvas, x: float, y: float, scale: float, rng: np.random.Generator) -> None:
    h = 170 * scale * rng.uniform(0.85, 1.1)
    w = h * 0.28
    p = C["pedestrian"]
    shirt = canvas.color(tuple(int(v) for v in rng.integers(20, 235, 3)), 0)
    legs = canvas.color((50, 50, 70), 30)
    canvas.rect(x - w * 0.35, y - h * 0.48, x - w * 0.05, y, p, legs)
    canvas.rect(x + w * 0.05, y - h * 0.48, x + w * 0.35, y, p, legs)
    canvas.rect(x - w / 2, y - h * 0.82, x + w / 2, y - h * 0.45, p, shirt)
    canvas.ellipse(x - w * 0.25, y - h, x + w * 0.25, y - h * 0.82, p, canvas.color((200, 160, 130), 30))


def pole(canvas: Canvas, x: float, y: float, scale: float, rng: np.random.Generator) -> None:
    h, w = 420 * scale * rng.uniform(0.8, 1.2), max(14 * scale, 1.5)
    canvas.rect(x - w / 2, y - h, x + w / 2, y, C["pole"], canvas.color((120, 120, 125), 25))
    kind = rng.random()
    if kind < 0.4:  # traffic sign
        r = 28 * scale
        cy = y - h + r
        col = [(200, 30, 30), (30, 70, 180), (230, 200, 40)][rng.integers(3)]
        if rng.random() < 0.5:
            canvas.ellipse(x - r, cy - r, x + r, cy + r, C["sign"], canvas.color(col, 15))
        else:
            canvas.poly([(x - r, cy + r), (x + r, cy + r), (x, cy - r)], C["sign"], canvas.color(col, 15))
    elif kind < 0.7:  # traffic light
        bw, bh = 24 * scale, 64 * scale
        top = y - h
        canvas.rect(x - bw / 2, top, x + bw / 2, top + bh, C["light"], canvas.color((35, 35, 35), 10))
        lit = rng.integers(3)
        for k, col in enumerate([(230, 40, 40), (240, 200, 40), (40, 220, 80)]):
            cy = top + bh * (k + 0.5) / 3
            c = col if k == lit else (60, 60, 60)
            canvas.draw_i.ellipse([x - bw * 0.3, cy - bw * 0.3, x + bw * 0.3, cy + bw * 0.3], fill=c)


def ego_hood(canvas: Canvas, rng: np.random.Generator) -> None:
    """The ego vehicle's bonnet: a wide arc rising to 8-18% of the frame height at the centre, in a
    body colour with a smeared reflection of the scene above; CARLA labels it Vehicles (id 10)."""
    h, w = canvas.h, canvas.w
    top = h * (1 - rng.uniform(0.08, 0.18))
    cx, rx = w * (0.5 + rng.uniform(-0.04, 0.04)), w * rng.uniform(0.75, 1.1)
    depth = h - top
    box = (cx - rx, top, cx + rx, top + 2.6 * depth)
    body = np.asarray(canvas.color(tuple(int(v) for v in rng.integers(15, 200, 3)), 0), np.float32)
    shape = Image.new("L", (w, h))
    ImageDraw.Draw(shape).ellipse(box, fill=255)
    inside = np.asarray(shape) > 0
    rows = np.arange(h, dtype=np.float32)[:, None]
    scene = np.asarray(canvas.image, dtype=np.float32)
    mirror = np.clip((2 * top - rows).astype(int), 0, h - 1)[:, 0]  # the scene above, flipped at the edge
    glint = np.clip(1 - (rows - top) / max(depth, 1), 0, 1)[:, :, None] * rng.uniform(0.15, 0.45)
    paint = body * (1 - glint) + scene[mirror] * glint
    out = np.where(inside[:, :, None], paint, scene)
    canvas.image.paste(Image.fromarray(out.astype(np.uint8)))
    canvas.mask.paste(Image.fromarray(np.where(inside, C["vehicle"], np.asarray(canvas.mask)).astype(np.uint8)))
    canvas.draw_i, canvas.draw_m = ImageDraw.Draw(canvas.image), ImageDraw.Draw(canvas.mask)
