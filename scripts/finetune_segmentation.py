#!/usr/bin/env python
"""Fine-tune SegFormer for semantic segmentation on a dataset built by medsets (BIS5k, GZMH tiles) with Trainer.

    python scripts/finetune_segmentation.py --dataset ./bis5k --output_dir runs/segformer-bis5k
    python scripts/finetune_segmentation.py --dataset ./gzmh --config tiles --output_dir runs/segformer-gzmh
    python scripts/finetune_segmentation.py --dataset ./bis5k --model nvidia/mit-b0 --output_dir runs/b0  # with a network

Offline the model is built from a config (`--model_size b0|b2`, the MiT shapes of the SegFormer paper) and
trained from scratch; `--model` loads pretrained weights (an ImageNet MiT encoder such as nvidia/mit-b0, or
a whole SegFormer) and resizes the head to the dataset's classes (`id2label.json` of the built folder).

Augmentation is joint on image and target in the DataLoader workers (scale-crop, flips, rotation by
multiples of 90 degrees, on uint8), colour jitter on the image only, on the batch where it lives (the GPU).
Mitoses cover ~0.03% of a GZMH tile, so with rare foreground (`--class_balance auto`) tiles holding some
are repeated to make about half of every epoch and the loss weights classes by inverse square-root
frequency; both can be set by hand (`--oversample_positive`, `--class_weights`) or switched off.

Scores: mean IoU and Dice per class from the pixel confusion matrix (the best epoch is chosen by validation
mean IoU; the final scores are taken at each target's stored size, as the BIS5k toolkit does, unless
`--score_size input`), and for two-class datasets the BIS5k toolkit columns (meanDic, meanIoU, wFm, Sm, meanEm, mae,
maxEm, maxDic, maxIoU: medsets.metrics.segmentation) on the foreground probability, next to the trivial
all-background prediction. On GZMH tiles also the papers' mitosis F1 on full images, as the detection
script scores its boxes (medsets.training.full_images): each connected region of foreground probability >= 0.5
is a detection at its centroid, scored by its highest probability; the threshold is chosen on validation.
Outputs in --output_dir: the model and its image processor, metrics.json, table.md, predictions.png
(images, ground truth and prediction side by side) and, on GZMH tiles, detections.png (a full test image).
Test images with a twin in the training data (the same image or field again, `duplicate_group`) are also
left out and scored again, beside the full score (`test_without_twins`, a line of table.md).

Several GPUs or machines: `accelerate launch scripts/finetune_segmentation.py ...` or
`torchrun --nproc_per_node 8 scripts/finetune_segmentation.py ...` (Trainer's DDP).

One module because a fine-tuning script is one file per task, as the transformers examples are; what the
scripts share lives in medsets.training.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from transformers import (AutoImageProcessor, SegformerConfig, SegformerForSemanticSegmentation,
                          SegformerImageProcessor, Trainer, set_seed)
from transformers.modeling_outputs import SemanticSegmenterOutput

from medsets.training.arguments import FinetuneTrainingArguments as SharedTrainingArguments
from medsets.training.arguments import CONFIG_OVERRIDES_HELP, overridden, parse_arguments, with_overrides
from medsets.training.checkpoints import train_and_save_best
from medsets.training.detection_picture import draw_detections
from medsets.training.full_images import (THRESHOLDS, CentreScorer, ScoringArguments, f1_table,
                                          has_tiles, leak_free_sources, tile_table)
from medsets.training.image_pipeline import AugmentOptions, BatchAugment, decode_once, fits_decode_cache
from medsets.training.segmentation_scores import (IGNORE, at_source_size, compute_metrics_for, mask_detections,
                                                  predicted_classes, score_maps, scored_with_intervals, table)
from medsets.training.splits import carve, leak_free_rows, oversampled, without_twins_line

logger = logging.getLogger("finetune_segmentation")
SEGFORMER_SIZES = {  # the MiT-B0 and MiT-B2 encoders of the SegFormer paper, with their decode heads
    "b0": dict(depths=[2, 2, 2, 2], hidden_sizes=[32, 64, 160, 256], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=256),
    "b2": dict(depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=768),
}


@dataclass
class DataArguments:
    dataset: str = field(metadata={
        "aliases": ["--dataset_name"], "help": "A folder written by `medsets build` (./bis5k) or a Hub dataset id."})
    config: str | None = field(default=None, metadata={
        "aliases": ["--dataset_config_name"], "help": "Dataset config (gzmh: tiles)."})
    train_split: str = field(default="train")
    validation_split: str | None = field(default=None, metadata={
        "help": "Split to select the best epoch on. Default: the dataset's `validation` split, else carved from train."})
    test_split: str = field(default="test", metadata={"help": "Split scored at the end (gzmh V2: `test` is both test sets)."})
    validation_fraction: float = field(default=0.1, metadata={
        "help": "Share of the train split carved out for validation, by whole source images for tiles."})
    image_size: int = field(default=512, metadata={"help": "Model input size; images and targets are resized to it."})
    score_size: str = field(default="source", metadata={
        "help": "Final scores: `source` compares each prediction, resized to its target's stored size (bilinear on "
                "probabilities), with the stored target, as the BIS5k toolkit evaluates (its reference code trains at "
                "352 px); `input` scores at --image_size. The best epoch is chosen at --image_size either way."})
    decode_workers: int | None = field(default=None, metadata={"help": "Processes decoding images (default: all cores)."})
    decode_cache_gb: float = field(default=16, metadata={
        "help": "Decode images once into a memory-mapped uint8 cache when it needs at most this many GB; larger "
                "sets (all GZMH tiles: ~40 GB) are decoded by the DataLoader workers every epoch instead."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep this many training images (quick runs)."})


@dataclass
class ModelArguments:
    model: str | None = field(default=None, metadata={"aliases": ["--model_name_or_path"],
        "help": "Hub id or folder of pretrained weights (nvidia/mit-b0, nvidia/segformer-b0-finetuned-ade-512-512). "
                "Default: a SegFormer built from a config and trained from scratch (works offline)."})
    model_size: str = field(default="b0", metadata={"help": "Size built from a config: b0 or b2."})
    config_overrides: str | None = field(default=None, metadata={"help": CONFIG_OVERRIDES_HELP})


@dataclass
class AugmentationArguments:
    crop_scale_min: float = field(default=0.5, metadata={
        "help": "Scale-crop: a random crop of at least this share of the image's area, resized to the input size "
                "(1 turns it off)."})
    rotate90: bool = field(default=True, metadata={"help": "Rotate by a random multiple of 90 degrees (with flips: all 8)."})
    color_jitter: bool = field(default=True, metadata={
        "help": "Brightness 0.8-1.2, contrast, saturation 0.2, hue 0.02 (stain variation), on the image only."})
    class_balance: str = field(default="auto", metadata={
        "help": "auto: when the rarest class covers under 2%% of the training pixels, oversample images holding it "
                "and weight the loss (the settings below, when given, win); none: neither."})
    oversample_positive: float | None = field(default=None, metadata={
        "help": "Repeat training images holding foreground this many times per epoch (auto: about half of each "
                "epoch is such images)."})
    class_weights: str | None = field(default=None, metadata={
        "help": "Loss weight per class: comma-separated numbers (1,20), `sqrt` (inverse square-root frequency, "
                "auto's choice for rare foreground) or `none`."})
    dice_loss: float | None = field(default=None, metadata={
        "help": "Weight of a soft Dice loss on the foreground classes, over the whole batch, added to the "
                "cross-entropy (auto: 1 for rare foreground, else 0). Dice ignores the background's share, so "
                "the few mitosis pixels count as much as the rest."})


@dataclass
class FinetuneTrainingArguments(SharedTrainingArguments):
    """The classification script's Trainer defaults (evaluate and keep the best epoch, cosine schedule with
    warm-up, DataLoader workers on every core, bf16 where the GPU has it), with this task's sizes and measure."""
    output_dir: str | None = field(default="runs/segformer")
    num_train_epochs: float = field(default=50)
    per_device_train_batch_size: int = field(default=16)
    per_device_eval_batch_size: int = field(default=16)
    metric_for_best_model: str | None = field(default="mean_iou")


# -- data ----------------------------------------------------------------------------------------------
def read_id2label(dataset: str, config: str | None = None) -> dict[int, str]:
    """`id2label.json` at the built folder's root (or the Hub dataset's), as the transformers example reads it;
    a config other than the folder's default has its own `id2label-CONFIG.json` where its classes differ."""
    named = [f"id2label-{config}.json"] if config else []
    local = next((Path(dataset) / name for name in named + ["id2label.json"] if (Path(dataset) / name).exists()), None)
    if local is not None:
        text = local.read_text()
    else:
        from huggingface_hub import hf_hub_download
        text = Path(hf_hub_download(dataset, "id2label.json", repo_type="dataset")).read_text()
    return {int(k): v for k, v in json.loads(text).items()}


def choose_splits(dataset, args: DataArguments, seed: int):
    """{'train', 'validation', 'test'?} -> datasets.Dataset, and notes for the metrics file."""
    notes, train = [], dataset[args.train_split]
    validation_name = args.validation_split or ("validation" if "validation" in dataset else None)
    if validation_name:
        validation = dataset[validation_name]
    else:
        # Tiles of one field must not straddle train and validation: carve whole source images.
        group = "source_image_id" if "source_image_id" in train.column_names else "image_id"
        groups = np.asarray(train[group])
        # Rare objects (mitoses): images with and without them carved in proportion, so validation holds some.
        strata = np.zeros(len(train), np.int64)
        if "objects" in train.column_names:
            has_objects = np.array([len(o["bbox"]) > 0 for o in train["objects"]])
            strata = np.isin(groups, groups[has_objects]).astype(np.int64)
        train_rows, validation_rows = carve(strata, groups, args.validation_fraction, seed)
        notes.append(f"validation: {args.validation_fraction:.0%} of {args.train_split!r} carved out by whole {group}"
                     f"{', images with and without objects in proportion' if strata.any() else ''} (seed {seed})")
        train, validation = train.select(train_rows), train.select(validation_rows)
    if args.max_train_samples is not None:
        train = train.shuffle(seed=seed).select(range(min(args.max_train_samples, len(train))))
    splits = {"train": train, "validation": validation}
    if args.test_split in dataset:
        splits["test"] = dataset[args.test_split]
    return splits, notes


class SegmentationPairs(torch.utils.data.Dataset):
    """(uint8 image (3, S, S), uint8 target (S, S)) pairs, from the decoded arrays (memory-mapped) or, for
    sets too large to cache, decoded here from the Arrow rows; `order` repeats rows (oversampling)."""

    def __init__(self, split, size: int, cached: tuple[Path, Path] | None, transform=None, order=None):
        self.split, self.size, self.cached, self.transform = split, size, cached, transform
        self.order = np.arange(len(split)) if order is None else np.asarray(order)
        self._arrays = None  # opened lazily: in each DataLoader worker, not pickled to it

    def __len__(self):
        return len(self.order)

    def pair(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        if self.cached:
            if self._arrays is None:
                self._arrays = [np.load(path, mmap_mode="r") for path in self.cached]
            return np.array(self._arrays[0][row]), np.array(self._arrays[1][row, 0])
        example = self.split[int(row)]
        image = example["image"].convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        target = example["label"].convert("L").resize((self.size, self.size), Image.Resampling.NEAREST)
        return np.asarray(image).transpose(2, 0, 1), np.asarray(target)

    def __getitem__(self, index):
        image, target = (torch.from_numpy(np.ascontiguousarray(a)) for a in self.pair(self.order[index]))
        if self.transform is not None:
            image, target = self.transform(image, target)
        return {"pixel_values": image, "labels": target}

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}


class JointTransform:
    """The same geometry for image and target, per sample in the workers, on uint8: scale-crop, flips and
    a random multiple of 90 degrees. The target is resized by nearest-exact (half-pixel centres, as the
    image's bilinear resize): torch's plain "nearest" shifts it by up to a pixel against the image, which
    matters for mitoses a few pixels across."""

    def __init__(self, size: int, crop_scale_min: float, rotate90: bool):
        self.size, self.crop_scale_min, self.rotate90 = size, crop_scale_min, rotate90

    def __call__(self, image: torch.Tensor, target: torch.Tensor):
        if self.crop_scale_min < 1:
            top, left, height, width = v2.RandomResizedCrop.get_params(image, scale=(self.crop_scale_min, 1.0),
                                                                      ratio=(3 / 4, 4 / 3))
            image = TF.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
            target = TF.resized_crop(target[None], top, left, height, width, [self.size, self.size],
                                     interpolation=v2.InterpolationMode.NEAREST_EXACT)[0]
        flips = torch.rand(2) < 0.5
        dims = [d for d, flip in zip((-1, -2), flips) if flip]
        turns = int(torch.randint(4, ())) if self.rotate90 else 0
        if dims:
            image, target = image.flip(dims), target.flip(dims)
        if turns:
            image, target = torch.rot90(image, turns, (-2, -1)), torch.rot90(target, turns, (-2, -1))
        return image.contiguous(), target.contiguous()


def pixel_counts(pairs: SegmentationPairs, classes: int, sample: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per class over the training targets (at most `sample` of them when decoded on the fly), and
    which images hold any foreground."""
    if pairs.cached:
        rows, targets = range(len(pairs.split)), np.load(pairs.cached[1], mmap_mode="r")[:, 0]
    else:
        rows = np.unique(np.linspace(0, len(pairs.split) - 1, min(sample, len(pairs.split))).astype(int))
        targets = pairs.split.select_columns(["label"])  # no image decoding
    counts, positive = np.zeros(classes, np.int64), np.zeros(len(pairs.split), bool)
    for row in rows:
        target = np.asarray(targets[int(row)]) if pairs.cached else np.asarray(targets[int(row)]["label"].convert("L"))
        found = np.bincount(target.ravel(), minlength=max(classes, IGNORE + 1))[:classes]
        counts += found
        positive[row] = found[1:].any()
    if not pairs.cached:  # unsampled images: ask the objects column when there is one, else assume background
        if "objects" in pairs.split.column_names:
            positive = np.array([len(o["bbox"]) > 0 for o in pairs.split["objects"]])
    return counts, positive


def class_balance(args: AugmentationArguments, counts: np.ndarray, positive: np.ndarray, notes: list[str]):
    """(loss weights or None, how many times to repeat each image holding foreground, Dice loss weight)."""
    shares = counts / max(counts.sum(), 1)
    rare = args.class_balance == "auto" and shares.min() < 0.02
    weights_arg = args.class_weights or ("sqrt" if rare else "none")
    weights = None
    if weights_arg == "sqrt":
        weights = np.sqrt(shares.max() / np.maximum(shares, 1e-8))
        weights = np.minimum(weights, 100.0)  # a class absent from the sample would otherwise get 10^4
    elif weights_arg != "none":
        weights = np.array([float(w) for w in weights_arg.split(",")])
        if len(weights) != len(counts):
            raise SystemExit(f"--class_weights {weights_arg}: {len(weights)} numbers for {len(counts)} classes")
    repeat = args.oversample_positive
    if repeat is None:
        share = positive.mean() if len(positive) else 0
        repeat = max(1.0, round((1 - share) / share)) if rare and share > 0 else 1.0
    notes.append(f"training pixels per class: {', '.join(f'{s:.4%}' for s in shares)}; "
                 f"{int(positive.sum())} of {len(positive)} training images hold foreground")
    if weights is not None:
        notes.append(f"loss weights per class: {', '.join(f'{w:.2f}' for w in weights)}")
    if repeat > 1:
        notes.append(f"images holding foreground repeated {repeat:g} times per epoch")
    dice = args.dice_loss if args.dice_loss is not None else (1.0 if rare else 0.0)
    if dice:
        notes.append(f"soft Dice loss on the foreground, weight {dice:g}")
    return (None if weights is None else torch.tensor(weights, dtype=torch.float32)), repeat, dice


# -- training ------------------------------------------------------------------------------------------
class SegmentationTrainer(Trainer):
    """Trainer whose batches arrive as uint8 and are jittered and normalised on the device; the logits are
    upsampled to the target's size for the loss (as SegFormer's own loss does), with optional class weights."""

    def __init__(self, *args, augment: BatchAugment, class_weights: torch.Tensor | None, dice_loss: float = 0.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.augment, self.class_weights, self.dice_loss = augment, class_weights, dice_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"].long()
        logits = model(pixel_values=self.augment(inputs["pixel_values"], train=model.training)).logits
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        if self.class_weights is not None and self.class_weights.device != logits.device:
            self.class_weights = self.class_weights.to(logits.device)  # once: a copy every step would synchronise
        loss = F.cross_entropy(logits, labels, weight=self.class_weights, ignore_index=IGNORE)
        if self.dice_loss:
            loss = loss + self.dice_loss * soft_dice_loss(logits, labels)
        return (loss, SemanticSegmenterOutput(logits=logits)) if return_outputs else loss


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of the foreground classes, summed over the whole batch (a tile without foreground then
    adds only false positives instead of an undefined 0/0), averaged over those classes."""
    keep = (labels != IGNORE).unsqueeze(1)
    probs = logits.softmax(1)[:, 1:] * keep
    truth = torch.zeros_like(logits).scatter_(1, labels.clamp(max=logits.shape[1] - 1).unsqueeze(1), 1.0)[:, 1:] * keep
    overlap = (probs * truth).sum((0, 2, 3))
    return (1 - (2 * overlap + 1) / (probs.sum((0, 2, 3)) + truth.sum((0, 2, 3)) + 1)).mean()


# -- model, outputs ------------------------------------------------------------------------------------
def build_model(args: ModelArguments, id2label: dict[int, str], image_size: int):
    label2id = {v: k for k, v in id2label.items()}
    if args.model:
        model = SegformerForSemanticSegmentation.from_pretrained(
            args.model, num_labels=len(id2label), id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)
        processor = AutoImageProcessor.from_pretrained(args.model)
        return model, processor, f"{args.model} (fine-tuned)"
    if args.model_size not in SEGFORMER_SIZES:
        raise SystemExit(f"--model_size {args.model_size}: choose {', '.join(SEGFORMER_SIZES)}")
    config = with_overrides(SegformerConfig(num_labels=len(id2label), id2label=id2label, label2id=label2id,
                                            **SEGFORMER_SIZES[args.model_size]), args.config_overrides)
    processor = SegformerImageProcessor(size={"height": image_size, "width": image_size}, do_reduce_labels=False)
    name = f"SegFormer-{args.model_size.upper()} {image_size}² (from scratch{overridden(args)})"
    return SegformerForSemanticSegmentation(config), processor, name


def overlay(image: np.ndarray, target: np.ndarray, colour: tuple) -> Image.Image:
    """The image with the target's foreground tinted and outlined in `colour`."""
    picture = image.astype(np.float32)
    fg = target > 0
    picture[fg] = 0.55 * picture[fg] + 0.45 * np.array(colour)
    edge = fg & ~(np.roll(fg, 1, 0) & np.roll(fg, -1, 0) & np.roll(fg, 1, 1) & np.roll(fg, -1, 1))
    picture[edge] = colour
    return Image.fromarray(picture.clip(0, 255).astype(np.uint8))


def predictions_picture(images, targets, predicted, title: str, path: Path, panel: int = 256):
    """One row per example: the image, the ground truth (green), the prediction (red)."""
    font = ImageFont.load_default(size=14)
    header = 54
    canvas = Image.new("RGB", (3 * panel + 40, header + len(images) * (panel + 10)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 6), title, fill="black", font=font)
    for column, name in enumerate(("image", "ground truth", "prediction")):
        draw.text((10 + column * (panel + 10), 32), name, fill="black", font=font)
    for row, (image, target, guess) in enumerate(zip(images, targets, predicted)):
        top = header + row * (panel + 10)
        image = image.transpose(1, 2, 0)
        for column, picture in enumerate((Image.fromarray(image), overlay(image, target, (40, 200, 40)),
                                          overlay(image, guess, (230, 40, 40)))):
            canvas.paste(picture.resize((panel, panel), Image.Resampling.NEAREST), (10 + column * (panel + 10), top))
    canvas.save(path)


@dataclass
class Run:
    """Everything `main` needs after set-up; `python -m benchmarks train-segmentation` times `trainer`."""
    trainer: SegmentationTrainer
    processor: object
    sets: dict
    names: list[str]
    model_name: str
    notes: list[str]
    data_args: DataArguments
    scoring: ScoringArguments  # mitosis F1 on full images (GZMH tiles)


def set_up(argv: list[str] | None = None) -> Run:
    # SegFormer's fine-tuning rate for pretrained weights; from scratch needs a larger step.
    data_args, model_args, augment_args, scoring, training_args = parse_arguments(
        (DataArguments, ModelArguments, AugmentationArguments, ScoringArguments, FinetuneTrainingArguments), argv, logger,
        (6e-5, 1e-3), __doc__)
    set_seed(training_args.seed)

    if data_args.score_size not in ("source", "input"):
        raise SystemExit(f"--score_size {data_args.score_size}: choose source or input")

    # 1. Data: splits, every image and target decoded once when they fit the cache, class balance.
    dataset = datasets.load_dataset(data_args.dataset, data_args.config)
    id2label = read_id2label(data_args.dataset, data_args.config)
    names = [id2label[k] for k in sorted(id2label)]
    splits, notes = choose_splits(dataset, data_args, training_args.seed)
    size = data_args.image_size
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "medsets-decoded"
    workers = data_args.decode_workers or os.cpu_count() or 1
    cached = {name: None for name in splits}
    if fits_decode_cache(splits, 4 * size * size, data_args.decode_cache_gb, notes):  # RGB image + target
        with training_args.main_process_first(desc="decoding images"):
            cached = {name: (decode_once(ds, size, False, workers, cache), decode_once(ds, size, False, workers, cache,
                                                                                       column="label"))
                      for name, ds in splits.items()}
    counts, positive = pixel_counts(SegmentationPairs(splits["train"], size, cached["train"]), len(names))
    weights, repeat, dice = class_balance(augment_args, counts, positive, notes)
    sets = {name: SegmentationPairs(ds, size, cached[name]) for name, ds in splits.items()}
    sets["train"] = SegmentationPairs(splits["train"], size, cached["train"],
                                      JointTransform(size, augment_args.crop_scale_min, augment_args.rotate90),
                                      oversampled(np.arange(len(positive)), positive, repeat))
    logger.info("splits %s (train rows per epoch %d); %s", {k: len(v.split) for k, v in sets.items()},
                len(sets["train"]), "; ".join(notes))

    # 2. Model and Trainer.
    model, processor, model_name = build_model(model_args, id2label, size)
    augment = BatchAugment(AugmentOptions(color_jitter=augment_args.color_jitter),
                           processor.image_mean, processor.image_std, jitter=BatchAugment.STAIN_JITTER)
    trainer = SegmentationTrainer(model=model, args=training_args, train_dataset=sets["train"],
                                  eval_dataset=sets["validation"], compute_metrics=compute_metrics_for(names),
                                  preprocess_logits_for_metrics=score_maps, augment=augment, class_weights=weights,
                                  dice_loss=dice)
    return Run(trainer, processor, sets, names, model_name, notes, data_args, scoring)


def main(argv: list[str] | None = None) -> dict:
    run = set_up(argv)
    trainer, args = run.trainer, run.trainer.args
    train_and_save_best(trainer, run.processor)

    # 3. Scores of the best epoch on validation and test, next to predicting background everywhere.
    results = {"dataset": run.data_args.dataset, "config": run.data_args.config, "model": run.model_name,
               "image_size": run.data_args.image_size, "notes": run.notes,
               "scored_at": "each target's stored size" if run.data_args.score_size == "source" else
                            f"{run.data_args.image_size}x{run.data_args.image_size}",
               "split_sizes": {k: len(v.split) for k, v in run.sets.items()},
               "best_checkpoint": trainer.state.best_model_checkpoint}
    shown, tiles, free_sources = None, {}, {}
    splits = {name: tiles_or_images.split for name, tiles_or_images in run.sets.items()}
    last = "test" if "test" in run.sets else "validation"
    for name in [n for n in ("validation", "test") if n in run.sets]:
        output = trainer.predict(run.sets[name], metric_key_prefix=name)
        maps, targets = output.predictions, output.label_ids  # at the input size
        scored = (at_source_size(maps, run.sets[name].split, len(run.names)) if run.data_args.score_size == "source"
                  else (maps, targets))
        toolkit_workers = (run.data_args.decode_workers or os.cpu_count() or 1) if trainer.is_world_process_zero() else None
        results[name] = scored_with_intervals(run.sets[name].split, *scored, run.names, toolkit_workers)
        results[name]["loss"] = output.metrics.get(f"{name}_loss")
        free = leak_free_rows(splits, name) if name == last else None
        if free is not None:  # the score on images the model never met, not even re-imaged
            results[f"{name}_without_twins"] = {**scored_with_intervals(
                run.sets[name].split.select(free), *([part[i] for i in free] for part in scored), run.names,
                toolkit_workers), "images": len(free), "of": len(maps)}
        shown = (name, maps, targets, predicted_classes(maps, len(run.names)))
        if len(run.names) == 2 and has_tiles(run.sets[name].split) and trainer.is_world_process_zero():
            layout = tile_table(run.sets[name].split)
            tiles[name] = (layout, mask_detections(maps, layout, run.scoring.dedupe_radius))
            free_sources |= leak_free_sources(splits, name, layout) if name == last else {}
    if tiles:  # GZMH: the papers' mitosis F1 on full images, threshold chosen on validation
        # Regions are where p >= 0.5, so lower thresholds would only repeat 0.5's scores.
        scorer = CentreScorer(run.scoring, [t for t in THRESHOLDS if t >= 0.5])
        results["mitosis_f1"] = scorer.report({k: found for k, (_, found) in tiles.items()},
                                              {k: layout.references for k, (layout, _) in tiles.items()}, free_sources)
    if trainer.is_world_process_zero():
        write_outputs(Path(args.output_dir), results, run, shown, tiles)
    if args.push_to_hub:
        trainer.push_to_hub(dataset=run.data_args.dataset)
    return results


MEASURES = "mean IoU {mean_iou:.3f}, mean Dice {mean_dice:.3f}"


def write_outputs(out: Path, results: dict, run: Run, shown, tiles: dict):
    split, maps, targets, predicted = shown
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    text = f"{run.data_args.dataset} {run.data_args.config or ''}: {run.model_name}\n\n" + table(results, run.names,
                                                                                               run.model_name)
    if "mitosis_f1" in results:
        mitoses = results["mitosis_f1"]
        text += "\n" + f1_table(mitoses, run.model_name + " (regions of p >= 0.5)", run.data_args.dataset, run.scoring)
        layout, found = tiles[split]
        draw_detections(run.sets[split].split, layout, np.arange(len(layout.source)), found,
                        mitoses[split]["threshold"], run.scoring.match_radius, out / "detections.png")
    if f"{split}_without_twins" in results:
        text += "\n" + without_twins_line(results, split, {s: None for s in run.sets}, MEASURES) + "\n"
    text += "\n" + "\n".join(f"{k}: {i['value']:.4f} [{i['ci_low']:.4f}, {i['ci_high']:.4f}] over {i['n_units']} "
                             f"{i['unit']}s (95%, bootstrap)" for k, i in results[split]["intervals"].items()) + "\n"
    (out / "table.md").write_text(text)
    # A few examples, those with the most foreground first (mitoses are rare: most tiles show nothing).
    foreground = (targets == 1).reshape(len(targets), -1).sum(1)
    chosen = np.argsort(-foreground, kind="stable")[:4]
    images = [run.sets[split].pair(int(i))[0] for i in chosen]
    scores = results[split]
    title = f"{split}: mean IoU {scores['mean_iou']:.3f}, Dice {run.names[-1]} {scores['dice_by_class'][run.names[-1]]:.3f}"
    predictions_picture(images, targets[chosen], predicted[chosen], title, out / "predictions.png")
    logger.info("%s mean IoU %.3f, mean Dice %.3f; written to %s", split, scores["mean_iou"], scores["mean_dice"], out)
    if f"{split}_without_twins" in results:
        logger.info(without_twins_line(results, split, {s: None for s in run.sets}, MEASURES))


if __name__ == "__main__":
    main()
