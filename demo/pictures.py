"""Draw the demo site's story pictures (demo/site/static/*.png) from simple shapes.

The pictures are committed; run this again only to change them: ``python demo/pictures.py``.
No imaging library and no download: shapes are filled on a canvas drawn at twice the size and
averaged down (for smooth edges), then written as PNG by hand.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "site" / "static"
WIDTH, HEIGHT, SCALE = 600, 300, 2

RGB = tuple[int, int, int]
Inside = Callable[[float, float], bool]


class Canvas:
    """An RGB canvas in picture coordinates (0..WIDTH, 0..HEIGHT), drawn at SCALE times the size."""

    def __init__(self, background: RGB) -> None:
        self.w, self.h = WIDTH * SCALE, HEIGHT * SCALE
        self.px = [list(background) * self.w for _ in range(self.h)]

    def fill(self, color: RGB, inside: Inside, box: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = (max(0, int(v * SCALE)) for v in box)
        for y in range(y0, min(self.h, y1 + 1)):
            row = self.px[y]
            for x in range(x0, min(self.w, x1 + 1)):
                if inside((x + 0.5) / SCALE, (y + 0.5) / SCALE):
                    row[3 * x:3 * x + 3] = color

    def rect(self, color: RGB, x: float, y: float, w: float, h: float) -> None:
        self.fill(color, lambda px, py: True, (x, y, x + w, y + h))

    def ellipse(self, color: RGB, cx: float, cy: float, rx: float, ry: float) -> None:
        self.fill(color, lambda px, py: ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 <= 1,
                  (cx - rx, cy - ry, cx + rx, cy + ry))

    def ring(self, color: RGB, cx: float, cy: float, rx: float, ry: float, width: float, top_only: bool = True) -> None:
        def inside(px: float, py: float) -> bool:
            outer = ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 <= 1
            inner = ((px - cx) / (rx - width)) ** 2 + ((py - cy) / (ry - width)) ** 2 <= 1
            return outer and not inner and (py <= cy or not top_only)
        self.fill(color, inside, (cx - rx, cy - ry, cx + rx, cy + ry))

    def gradient(self, top: RGB, bottom: RGB, y0: float, y1: float) -> None:
        for y in range(int(y0 * SCALE), min(self.h, int(y1 * SCALE))):
            t = (y - y0 * SCALE) / max(1, (y1 - y0) * SCALE)
            color = [round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)]
            self.px[y] = color * self.w

    def png(self) -> bytes:
        rows = []
        for y in range(0, self.h, SCALE):
            out = bytearray(b"\x00")
            for x in range(0, self.w, SCALE):
                for c in range(3):
                    total = sum(self.px[y + dy][3 * (x + dx) + c] for dy in range(SCALE) for dx in range(SCALE))
                    out.append(total // (SCALE * SCALE))
            rows.append(bytes(out))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
                + chunk(b"IEND", b""))


def footbridge() -> Canvas:
    c = Canvas((0, 0, 0))
    c.gradient((120, 180, 230), (214, 234, 248), 0, 190)
    c.ellipse((255, 236, 170), 500, 62, 26, 26)
    c.rect((96, 156, 92), 0, 170, 600, 30)
    c.gradient((52, 110, 160), (30, 78, 122), 190, 300)
    c.rect((84, 140, 80), 0, 175, 90, 40)
    c.rect((84, 140, 80), 510, 175, 90, 40)
    c.ring((250, 250, 250), 300, 215, 250, 110, 9)
    c.rect((250, 250, 250), 50, 150, 500, 7)
    for x in range(90, 520, 30):
        c.rect((235, 235, 235), x, 118 if 180 < x < 420 else 128, 3, 32 if 180 < x < 420 else 22)
    for x, w in ((120, 180), (330, 140)):
        c.rect((170, 210, 235), x, 240, w, 3)
    return c


def football() -> Canvas:
    c = Canvas((58, 140, 70))
    for x in range(0, 600, 80):
        c.rect((66, 152, 78), x, 0, 40, 300)
    white = (245, 245, 245)
    c.rect(white, 20, 20, 560, 4)
    c.rect(white, 20, 276, 560, 4)
    c.rect(white, 20, 20, 4, 260)
    c.rect(white, 576, 20, 4, 260)
    c.rect(white, 298, 20, 4, 260)
    c.ring(white, 300, 150, 55, 55, 4, top_only=False)
    c.rect(white, 20, 90, 70, 4)
    c.rect(white, 20, 206, 70, 4)
    c.rect(white, 86, 90, 4, 120)
    c.ellipse((30, 30, 30), 214, 184, 20, 6)
    c.ellipse(white, 210, 160, 19, 19)
    c.ellipse((30, 30, 30), 210, 160, 6, 6)
    return c


def stretch() -> Canvas:
    c = Canvas((0, 0, 0))
    c.gradient((250, 238, 222), (243, 224, 200), 0, 230)
    c.rect((196, 150, 108), 0, 230, 600, 70)
    c.rect((120, 82, 52), 90, 170, 300, 14)
    c.rect((120, 82, 52), 105, 184, 12, 80)
    c.rect((120, 82, 52), 363, 184, 12, 80)
    c.rect((44, 52, 64), 170, 80, 150, 86)
    c.rect((120, 190, 230), 178, 88, 134, 70)
    c.rect((44, 52, 64), 238, 166, 14, 6)
    c.ellipse((74, 160, 120), 480, 190, 45, 55)
    c.rect((150, 100, 70), 455, 230, 50, 40)
    c.ellipse((232, 110, 80), 480, 120, 22, 22)
    return c


def medicines() -> Canvas:
    c = Canvas((220, 240, 238))
    pills = ((120, 90, (232, 96, 76)), (260, 170, (70, 130, 200)), (420, 100, (246, 190, 70)),
             (160, 220, (120, 180, 110)), (470, 215, (232, 96, 76)))
    for x, y, color in pills:
        c.ellipse((255, 255, 255), x - 30, y, 26, 26)
        c.ellipse(color, x + 30, y, 26, 26)
        c.rect((255, 255, 255), x - 30, y - 26, 30, 52)
        c.rect(color, x, y - 26, 30, 52)
    c.ellipse((255, 255, 255), 330, 70, 22, 22)
    c.rect((200, 200, 200), 310, 68, 40, 4)
    return c


def nightbus() -> Canvas:
    c = Canvas((0, 0, 0))
    c.gradient((16, 24, 52), (40, 56, 96), 0, 230)
    for x, y in ((60, 40), (150, 70), (260, 30), (380, 60), (520, 36), (560, 90), (90, 110)):
        c.ellipse((240, 240, 210), x, y, 2, 2)
    c.ellipse((246, 240, 210), 470, 60, 20, 20)
    c.rect((52, 58, 66), 0, 230, 600, 70)
    c.rect((230, 210, 90), 0, 262, 600, 4)
    for x in (40, 560):
        c.rect((90, 96, 104), x, 80, 6, 150)
        c.ellipse((255, 220, 140), x + 3, 80, 12, 8)
    c.rect((198, 40, 46), 110, 120, 380, 110)
    for x in range(130, 460, 55):
        c.rect((255, 222, 120), x, 135, 40, 40)
    c.rect((255, 255, 255), 110, 190, 380, 6)
    c.rect((255, 236, 160), 470, 200, 20, 14)
    for x in (175, 420):
        c.ellipse((28, 28, 30), x, 232, 22, 22)
        c.ellipse((150, 150, 150), x, 232, 8, 8)
    return c


PICTURES = {"footbridge.png": footbridge, "football.png": football, "desk-stretch.png": stretch,
            "medicines.png": medicines, "night-bus.png": nightbus}


def main() -> None:
    for name, draw in PICTURES.items():
        data = draw().png()
        (OUT / name).write_bytes(data)
        print(f"{OUT / name}  {len(data)} bytes")


if __name__ == "__main__":
    main()
