"""The input side of the fine-tuning scripts: decode once, then augment uint8 batches on the device.

- `decode_once`: every image of a split decoded once, at the model's input size, into one (N, C, S, S)
  uint8 .npy (written in parallel, keyed by the dataset's fingerprint, reused by later runs) that every
  DataLoader worker memory-maps: workers then only crop and flip, which 16 cores do far faster than a
  GPU trains (decoding a 450x450 PNG is ~10 ms; the crop ~0.3 ms).
- `BatchAugment`: RandAugment, colour jitter and random erasing with per-sample parameters on a whole
  batch where it lives (the GPU), then normalisation; `mix`: mixup / cutmix.
"""

from __future__ import annotations

import hashlib
import io
import math
import multiprocessing
import os
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm


# -- decode once ----------------------------------------------------------------------------------------
_DECODE = {}


def _decode_init(ds, path, size, channels, apply_mask):
    _DECODE.update(ds=ds, pixels=np.load(path, mmap_mode="r+"), size=size, channels=channels, apply_mask=apply_mask)


def _decode_range(span):
    start, stop = span
    ds, pixels, size = _DECODE["ds"], _DECODE["pixels"], _DECODE["size"]
    rows = ds[start:stop]
    masks = rows.get("mask") if _DECODE["apply_mask"] else None
    for offset, image in enumerate(rows["image"]):
        image = image.convert("L" if _DECODE["channels"] == 1 else "RGB")
        if masks is not None and masks[offset] is not None:  # paper, section 3.1.1: outside the mask is black
            image = Image.composite(image, Image.new(image.mode, image.size), masks[offset].convert("L").point(
                lambda v: 255 if v else 0))
        array = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
        pixels[start + offset] = array.reshape(size, size, -1).transpose(2, 0, 1)
    pixels.flush()
    return stop - start


def decode_once(ds, size: int, apply_mask: bool, workers: int, cache: Path) -> Path:
    """All images of a split as one (N, C, size, size) uint8 .npy, written once per dataset fingerprint
    and settings, then memory-mapped by every DataLoader worker."""
    apply_mask = apply_mask and "mask" in ds.column_names
    modes = {Image.open(io.BytesIO(cell["bytes"])).mode
             for cell in ds.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))["image"]}
    channels = 1 if modes <= {"L", "I;16", "1"} else 3
    key = hashlib.sha1(f"{ds._fingerprint}-{size}-{apply_mask}-{channels}-v1".encode()).hexdigest()[:16]
    path = cache / f"{key}.npy"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial.npy")
    np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(ds), channels, size, size)).flush()
    spans = [(i, min(i + 64, len(ds))) for i in range(0, len(ds), 64)]
    progress = tqdm(total=len(ds), desc=f"decoding {len(ds)} images once ({size}x{size}, {channels} ch)", unit="img")
    if workers > 1 and len(ds) > 512:
        with multiprocessing.get_context("fork").Pool(workers, _decode_init, (ds, partial, size, channels, apply_mask)) as pool:
            for done in pool.imap_unordered(_decode_range, spans):
                progress.update(done)
    else:
        _decode_init(ds, partial, size, channels, apply_mask)
        for span in spans:
            progress.update(_decode_range(span))
        _DECODE.clear()
    progress.close()
    os.replace(partial, path)
    return path


class DecodedImages(torch.utils.data.Dataset):
    """uint8 (C, H, W) tensors from the decoded array, with a per-sample transform (crop, flips)."""

    def __init__(self, path: Path, labels, transform=None):
        self.path, self.labels, self.transform = path, np.asarray(labels, dtype=np.int64), transform
        self._pixels = None  # opened lazily: in each DataLoader worker, not pickled to it

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        if self._pixels is None:
            self._pixels = np.load(self.path, mmap_mode="r")
        pixels = torch.from_numpy(np.array(self._pixels[index]))
        if self.transform is not None:
            pixels = self.transform(pixels)
        return {"pixel_values": pixels, "labels": int(self.labels[index])}

    def __getstate__(self):
        return {**self.__dict__, "_pixels": None}


# -- augmentation on the batch (GPU) ---------------------------------------------------------------------
RANDAUGMENT_MAGNITUDE = 9 / 30  # magnitude 9 of 31 bins, as torchvision's and timm's defaults


def _affine(**kwargs):
    return lambda x, sign: TF.affine(x, **{"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [0.0, 0.0],
                                           **{k: v(sign, x) if callable(v) else v for k, v in kwargs.items()}})


RANDAUGMENT_OPS = {  # name -> (op(uint8 batch, sign), signed); magnitudes of RandAugment (Cubuk et al. 2019)
    "identity": (lambda x, s: x, False),
    "shear_x": (_affine(shear=lambda s, x: [s * math.degrees(math.atan(0.3 * RANDAUGMENT_MAGNITUDE)), 0.0]), True),
    "shear_y": (_affine(shear=lambda s, x: [0.0, s * math.degrees(math.atan(0.3 * RANDAUGMENT_MAGNITUDE))]), True),
    "translate_x": (_affine(translate=lambda s, x: [int(s * 150 / 331 * RANDAUGMENT_MAGNITUDE * x.shape[-1]), 0]), True),
    "translate_y": (_affine(translate=lambda s, x: [0, int(s * 150 / 331 * RANDAUGMENT_MAGNITUDE * x.shape[-2])]), True),
    "rotate": (_affine(angle=lambda s, x: s * 30.0 * RANDAUGMENT_MAGNITUDE), True),
    "brightness": (lambda x, s: TF.adjust_brightness(x, 1 + s * 0.9 * RANDAUGMENT_MAGNITUDE), True),
    "color": (lambda x, s: TF.adjust_saturation(x, 1 + s * 0.9 * RANDAUGMENT_MAGNITUDE), True),
    "contrast": (lambda x, s: TF.adjust_contrast(x, 1 + s * 0.9 * RANDAUGMENT_MAGNITUDE), True),
    "sharpness": (lambda x, s: TF.adjust_sharpness(x, 1 + s * 0.9 * RANDAUGMENT_MAGNITUDE), True),
    "posterize": (lambda x, s: TF.posterize(x, 8 - round(30 * RANDAUGMENT_MAGNITUDE / 7.5)), False),
    "solarize": (lambda x, s: TF.solarize(x, 255.0 * (1 - RANDAUGMENT_MAGNITUDE)), False),
    "autocontrast": (lambda x, s: TF.autocontrast(x), False),
    "equalize": (lambda x, s: TF.equalize(x), False),
}


class BatchAugment:
    """Per-sample random augmentation of a whole uint8 batch on its device, then normalisation.

    RandAugment: each sample draws 2 ops; each op runs once on the samples that drew it (so the work is
    a few dozen batched calls, not one call per sample). Colour jitter and random erasing draw their
    parameters per sample and run vectorised."""

    def __init__(self, protocol, mean: list[float], std: list[float]):
        self.protocol = protocol
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def randaugment(self, x: torch.Tensor, num_ops: int = 2) -> torch.Tensor:
        ops = list(RANDAUGMENT_OPS.values())
        for _ in range(num_ops):
            drawn = torch.randint(len(ops), (len(x),), device=x.device)
            signs = torch.where(torch.rand(len(x), device=x.device) < 0.5, -1, 1)
            for k, (op, signed) in enumerate(ops):
                for sign in ((-1, 1) if signed else (1,)):
                    chosen = torch.nonzero((drawn == k) & ((signs == sign) | (not signed))).flatten()
                    if len(chosen):
                        x[chosen] = op(x[chosen], sign)
        return x

    def color_jitter(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)

        def uniform(low, high):
            return torch.empty(b, 1, 1, 1, device=x.device).uniform_(low, high)

        x = x * uniform(0.3, 1.5)
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey.mean(dim=(2, 3), keepdim=True)) * uniform(0.5, 1.5) + grey.mean(dim=(2, 3), keepdim=True)
        if x.shape[1] == 3:
            grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
            x = (x - grey) * uniform(0.7, 1.3) + grey
            x = self.rotate_hue(x, torch.empty(b, device=x.device).uniform_(-0.01, 0.01))
        return x.clamp(0, 1)

    @staticmethod
    def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
        """Hue shift as a rotation of the chroma plane in YIQ space (a 3x3 matrix per sample)."""
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
        cos, sin = torch.cos(2 * math.pi * turns), torch.sin(2 * math.pi * turns)
        rotation = torch.zeros(len(x), 3, 3, device=x.device)
        rotation[:, 0, 0] = 1
        rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
        matrix = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
        return torch.einsum("bij,bjhw->bihw", matrix, x)

    def random_erasing(self, x: torch.Tensor, p: float) -> torch.Tensor:
        b, _, h, w = x.shape
        area = torch.empty(b, device=x.device).uniform_(0.02, 0.33) * h * w
        ratio = torch.exp(torch.empty(b, device=x.device).uniform_(math.log(0.3), math.log(3.3)))
        eh = torch.sqrt(area * ratio).clamp(1, h).floor()
        ew = torch.sqrt(area / ratio).clamp(1, w).floor()
        top = (torch.rand(b, device=x.device) * (h - eh + 1)).floor()
        left = (torch.rand(b, device=x.device) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        box = ((rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
               & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1)))
        erase = box & (torch.rand(b, 1, 1, device=x.device) < p)
        return x.masked_fill(erase.unsqueeze(1), 0.0)  # 0 after normalising: the mean colour

    def __call__(self, pixels: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float (B, 3, H, W)."""
        if train and self.protocol.randaugment:
            pixels = self.randaugment(pixels.clone())
        x = pixels.float() / 255
        if train and self.protocol.color_jitter:
            x = self.color_jitter(x)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if train and self.protocol.random_erasing:
            x = self.random_erasing(x, self.protocol.random_erasing)
        return x


def mix(x: torch.Tensor, targets: torch.Tensor, mixup_alpha: float, cutmix_alpha: float):
    """Mixup or cutmix (one of the two per batch, as timm's switch_prob 0.5) with the reversed batch."""
    if not (mixup_alpha or cutmix_alpha):
        return x, targets
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha == 0 or np.random.rand() < 0.5)
    lam = float(np.random.beta(*(2 * [cutmix_alpha if use_cutmix else mixup_alpha])))
    if use_cutmix:
        h, w = x.shape[-2:]
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = np.random.randint(h), np.random.randint(w)
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x.flip(0)
    return x, lam * targets + (1 - lam) * targets.flip(0)
