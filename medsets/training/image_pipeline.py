"""The input side of the fine-tuning scripts: decode once, then augment uint8 batches on the device.

- `decode_once`: every image of a split decoded once, at the model's input size, into one (N, C, S, S)
  uint8 .npy (written in parallel, keyed by the dataset's fingerprint, reused by later runs) that every
  DataLoader worker memory-maps: workers then only crop and flip, which 16 cores do far faster than a
  GPU trains (decoding a 450x450 PNG is ~10 ms; the crop ~0.3 ms).
- `worker_transform`: per sample in the workers, on uint8: crop, flips, RandAugment;
- `BatchAugment`: colour jitter, normalisation and random erasing with per-sample parameters on the
  whole batch where it lives (the GPU); `mix`: mixup / cutmix there too.
"""

from __future__ import annotations

import dataclasses
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
from torchvision.transforms import v2
from tqdm.auto import tqdm

# -- decode once ----------------------------------------------------------------------------------------
_DECODE = {}


def _decode_init(ds, path, size, channels, apply_mask, stretch, column):
    _DECODE.update(ds=ds, pixels=np.load(path, mmap_mode="r+"), size=size, channels=channels, apply_mask=apply_mask,
                   stretch=stretch, column=column)


def _decode_range(span):
    start, stop = span
    ds, pixels, size = _DECODE["ds"], _DECODE["pixels"], _DECODE["size"]
    rows = ds[start:stop]
    masks = rows.get("mask") if _DECODE["apply_mask"] else None
    if _DECODE["column"] != "image":  # a target mask of class ids: nearest neighbour keeps them ids
        for offset, mask in enumerate(rows[_DECODE["column"]]):
            pixels[start + offset, 0] = np.asarray(mask.convert("L").resize((size, size), Image.Resampling.NEAREST))
        pixels.flush()
        return stop - start
    for offset, image in enumerate(rows["image"]):
        image = image.convert("L" if _DECODE["channels"] == 1 else "RGB")
        if masks is not None and masks[offset] is not None:  # paper, section 3.1.1: outside the mask is black
            image = Image.composite(image, Image.new(image.mode, image.size), masks[offset].convert("L").point(
                lambda v: 255 if v else 0))
        array = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
        if _DECODE["stretch"] and array.max() > 0:  # brightest pixel to 255, all channels alike (hue kept)
            array = (array.astype(np.float32) * (255.0 / array.max())).round().astype(np.uint8)
        pixels[start + offset] = array.reshape(size, size, -1).transpose(2, 0, 1)
    pixels.flush()
    return stop - start


GREY_MODES = ("1", "L", "LA", "I", "I;16")


def image_channels(ds, chunk: int = 1024) -> int:
    """1 when every image of the split is grey, else 3, from the file headers only: the encoded bytes are
    read a chunk of rows at a time (GZMH's training tiles alone hold ~10 GB of them), and the scan stops
    at the first colour image."""
    encoded = ds.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    for rows in encoded.iter(batch_size=chunk):
        for cell in rows["image"]:
            encoded_file = io.BytesIO(cell["bytes"]) if cell["bytes"] is not None else cell["path"]
            if Image.open(encoded_file).mode not in GREY_MODES:
                return 3
    return 1


def decode_once(ds, size: int, apply_mask: bool, workers: int, cache: Path, stretch: bool = False,
                column: str = "image") -> Path:
    """All images of a split as one (N, C, size, size) uint8 .npy, written once per dataset fingerprint
    and settings, then memory-mapped by every DataLoader worker. `column="label"` decodes a segmentation
    target instead: (N, 1, size, size) class ids, resized by nearest neighbour."""
    apply_mask = apply_mask and "mask" in ds.column_names and column == "image"
    if column == "image":
        channels = image_channels(ds)
    else:
        channels, stretch = 1, False
    key = f"{ds._fingerprint}-{size}-{apply_mask}-{channels}-{stretch}-v1" + ("" if column == "image" else f"-{column}")
    key = hashlib.sha1(key.encode()).hexdigest()[:16]
    path = cache / f"{key}.npy"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    ds = ds.select_columns([column] + (["mask"] if apply_mask else []))  # decode nothing else
    partial = path.with_suffix(f".{os.getpid()}.partial.npy")
    np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(ds), channels, size, size)).flush()
    spans = [(i, min(i + 64, len(ds))) for i in range(0, len(ds), 64)]
    what = "images" if column == "image" else f"{column} masks"
    progress = tqdm(total=len(ds), desc=f"decoding {len(ds)} {what} once ({size}x{size}, {channels} ch)", unit="img")
    if workers > 1 and len(ds) > 512:
        with multiprocessing.get_context("fork").Pool(workers, _decode_init, (ds, partial, size, channels, apply_mask,
                                                                                         stretch, column)) as pool:
            for done in pool.imap_unordered(_decode_range, spans):
                progress.update(done)
    else:
        _decode_init(ds, partial, size, channels, apply_mask, stretch, column)
        for span in spans:
            progress.update(_decode_range(span))
        _DECODE.clear()
    progress.close()
    os.replace(partial, path)
    return path


def fits_decode_cache(splits: dict, bytes_per_image: int, limit_gb: float, notes: list[str]) -> bool:
    """Whether every split, decoded once (`bytes_per_image` each), fits --decode_cache_gb. When not, the
    notes say so: the DataLoader workers then decode every epoch."""
    needed_gb = sum(len(ds) for ds in splits.values()) * bytes_per_image / 1e9
    if needed_gb <= limit_gb:
        return True
    notes.append(f"decoded by the DataLoader workers each epoch (a cache would need {needed_gb:.1f} GB, "
                 f"--decode_cache_gb {limit_gb:g})")
    return False


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


# -- augmentation ----------------------------------------------------------------------------------------
def worker_transform(size: int, crop_scale_min: float, randaugment: bool):
    """Per-sample, in the DataLoader workers, on uint8 tensors: random resized crop, flips and (paper
    protocol) RandAugment with 2 ops at magnitude 9. RandAugment's ops are geometric and per-sample, so
    they are cheap here (~2-3 ms per 224 px image per core, 16 workers: several thousand images/s) and
    would cost the GPU a host sync per op group if batched there."""
    steps = [v2.RandomResizedCrop(size, scale=(crop_scale_min, 1.0), antialias=True),
             v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if randaugment:
        steps.append(v2.RandAugment(num_ops=2, magnitude=9))
    return v2.Compose(steps)


TO_YIQ = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
FROM_YIQ = np.linalg.inv(np.array(TO_YIQ)).astype(np.float32).tolist()


@dataclasses.dataclass
class AugmentOptions:
    """What `BatchAugment` does besides normalising: colour jitter on or off, and the probability of
    random erasing (0 where it could erase what is to be found, such as a mitosis)."""
    color_jitter: bool = True
    random_erasing: float = 0.0


class BatchAugment:
    """The rest of the augmentation on the whole batch where it lives (the GPU), vectorised with
    per-sample parameters and no host synchronisation: colour jitter (Table 1's ranges of the HEp-2
    report unless `jitter` says otherwise), normalisation, random erasing."""

    TABLE1_JITTER = dict(brightness=(0.3, 1.5), contrast=0.5, saturation=0.3, hue=0.01)  # the HEp-2 report's
    # For H&E (segmentation, mitosis detection): stain varies between labs and scanners by about this much,
    # and mitoses are told from other nuclei by how dark they are, which Table 1's brightness range blurs.
    STAIN_JITTER = dict(brightness=(0.8, 1.2), contrast=0.2, saturation=0.2, hue=0.02)

    def __init__(self, options: AugmentOptions, mean: list[float], std: list[float], jitter: dict | None = None):
        self.options = options
        self.jitter = {**self.TABLE1_JITTER, **(jitter or {})}
        self.constants = {"mean": torch.tensor(mean).view(1, -1, 1, 1), "std": torch.tensor(std).view(1, -1, 1, 1),
                          "to_yiq": torch.tensor(TO_YIQ), "from_yiq": torch.tensor(FROM_YIQ)}
        self._on_device = {}

    def constant(self, name: str, device: torch.device) -> torch.Tensor:
        """A constant, copied to the device once: a copy from the host every step would wait for the GPU to
        finish all queued work first (torch's blocking host-to-device copy synchronises the stream)."""
        key = (name, str(device))
        if key not in self._on_device:
            self._on_device[key] = self.constants[name].to(device)
        return self._on_device[key]

    def color_jitter(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)

        def uniform(low, high):
            return torch.empty(b, 1, 1, 1, device=x.device).uniform_(low, high)

        j = self.jitter
        x = x * uniform(*j["brightness"])
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey.mean(dim=(2, 3), keepdim=True)) * uniform(1 - j["contrast"], 1 + j["contrast"]) + grey.mean(
            dim=(2, 3), keepdim=True)
        if x.shape[1] == 3:
            grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
            x = (x - grey) * uniform(1 - j["saturation"], 1 + j["saturation"]) + grey
            x = self.rotate_hue(x, torch.empty(b, device=x.device).uniform_(-j["hue"], j["hue"]),
                                self.constant("to_yiq", x.device), self.constant("from_yiq", x.device))
        return x.clamp(0, 1)

    @staticmethod
    def rotate_hue(x: torch.Tensor, turns: torch.Tensor, to_yiq: torch.Tensor | None = None,
                   from_yiq: torch.Tensor | None = None) -> torch.Tensor:
        """Hue shift as a rotation of the chroma plane in YIQ space (a 3x3 matrix per sample)."""
        to_yiq = torch.tensor(TO_YIQ, device=x.device) if to_yiq is None else to_yiq
        from_yiq = torch.tensor(FROM_YIQ, device=x.device) if from_yiq is None else from_yiq
        cos, sin = torch.cos(2 * math.pi * turns), torch.sin(2 * math.pi * turns)
        rotation = torch.zeros(len(x), 3, 3, device=x.device)
        rotation[:, 0, 0] = 1
        rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
        matrix = from_yiq @ rotation @ to_yiq
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
        x = pixels.float() / 255
        if train and self.options.color_jitter:
            x = self.color_jitter(x)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = (x - self.constant("mean", x.device)) / self.constant("std", x.device)
        if train and self.options.random_erasing:
            x = self.random_erasing(x, self.options.random_erasing)
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
