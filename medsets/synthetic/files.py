"""Writing a replica: into a folder or straight into a .zip, with the file formats the real downloads use."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin


class Writer:
    """Writes files either into a folder or straight into a .zip (no temporary extraction)."""

    def __init__(self, dest, as_zip: bool):
        """`dest` names the replica: the folder itself, or `dest` + '.zip'; `self.dest` is that path."""
        self.dest = Path(f"{dest}.zip") if as_zip else Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if not as_zip:
            self.dest.mkdir(exist_ok=True)
        # Deflated like the real downloads; level 1 keeps writing large replicas fast.
        self.zip = zipfile.ZipFile(self.dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) if as_zip else None

    def bytes(self, rel: str, data: bytes):
        if self.zip is not None:
            self.zip.writestr(rel, data)
        else:
            path = self.dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def text(self, rel: str, rows: list[list], delimiter=",", bom=False, crlf=False, trailing_blank=False,
             final_newline=True):
        newline = "\r\n" if crlf else "\n"
        text = newline.join(delimiter.join(str(c) for c in row) for row in rows) + (newline if final_newline else "")
        if trailing_blank:
            text += newline * 2
        self.bytes(rel, (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))

    def png(self, rel: str, array: np.ndarray, saved: tuple[int, ...] | None = None):
        """`saved` (year, month, day, hour, minute, second) goes into a tIME chunk, as the real files carry one."""
        buffer = io.BytesIO()
        info = None
        if saved:
            info = PngImagePlugin.PngInfo()
            info.add(b"tIME", struct.pack(">HBBBBB", *saved))
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1, pnginfo=info)
        self.bytes(rel, buffer.getvalue())

    def close(self):
        if self.zip is not None:
            self.zip.close()


def scaled(n: int, scale: float) -> int:
    """A published count at a replica's scale: at least one."""
    return max(1, round(n * scale))


def grey(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as 8-bit grey levels."""
    return (image * 255).astype(np.uint8)


def mask_levels(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as the sources store masks: 0 and 255."""
    return (mask * 255).astype(np.uint8)


def reimaged(pixels: np.ndarray, rng: np.random.Generator, *, gain: float = 1.1, noise: float = 4.0,
             turns: int = 0, mirror: bool = False) -> np.ndarray:
    """An 8-bit image of the same object taken again: another exposure and fresh camera noise, and, as a
    redistribution may have done, turned by 90-degree steps or mirrored."""
    image = pixels[:, ::-1] if mirror else pixels
    image = np.rot90(image, turns).astype(np.float32) * gain
    image = image + noise * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def bmp(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="BMP")
    return buffer.getvalue()
