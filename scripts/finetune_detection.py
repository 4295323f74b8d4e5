#!/usr/bin/env python
"""Train an RT-DETR detector with Trainer on a dataset built by medsets; score it on full images.

    python scripts/finetune_detection.py --dataset ./gzmh --config tiles --output_dir runs/rtdetr-gzmh
    python scripts/finetune_detection.py --dataset ./gzmh --model PekingU/rtdetr_r18vd \\
        --output_dir runs/rtdetr-r18-gzmh                                    # COCO weights, with a network
    python scripts/finetune_detection.py --dataset ./hep2 --config icpr2012_slides --match_radius 40 \\
        --output_dir runs/rtdetr-hep2-slides                                 # cells on whole HEp-2 slides

A dataset without tiles (HEp-2 `icpr2012_slides`: one row per slide, six patterns) is read as one tile
per image, resized to --image_size; the classes come from the dataset's `objects.category`. Every run is
also scored with COCO mean average precision (torchmetrics' MeanAveragePrecision, as the transformers
object-detection example scores) on the full images' boxes, per class too.

Training sees the 512x512 tiles of `medsets build gzmh --config tiles`: every object listed in a tile
(also those another tile counts: all are visible) is a box of class `mitosis`. Scoring follows the
GZMH papers on whole images: each tile's detections go back to full-image pixels, a detection is kept
only by the tile whose core (builders.objects.core_bounds: overlaps split at their middle) holds its
centre, lower-scored detections within --dedupe_radius of a kept one are dropped, and the mitosis F1
module (medsets.metrics.mitosis) matches centres within --match_radius (20 px) of the mitoses (of the
cells, on HEp-2 slides: metrics.json, table.md and the picture name what the dataset holds). The
score threshold is the one with the best F1 on validation (whole source images carved from train);
the best epoch is chosen by that validation F1 too. Outputs in --output_dir: the model and its image
processor, metrics.json, table.md and detections.png (a test image reassembled from its tiles).

The input pipeline is the classification script's: tiles decoded once into a memory-mapped uint8
array when it fits --decode_cache_gb (else the DataLoader workers decode them), flips and 90-degree
turns (boxes turned with them) in the DataLoader workers, colour jitter and normalisation on the device.
Several GPUs: `accelerate launch` or `torchrun` (Trainer's DDP); every rank detects on its share of the
images and the detections are gathered before scoring.

Test images with a twin in the training data (the same field imaged twice, `duplicate_group`) are scored
again left out, beside the full score: `test_without_twins` in metrics.json, a row of table.md.

One module because a fine-tuning script is one file per task, as the transformers examples are; what the
scripts share lives in medsets.training.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from transformers import (AutoImageProcessor, RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor,
                          RTDetrResNetConfig, Trainer, set_seed)

from medsets.training.arguments import FinetuneTrainingArguments as SharedTrainingArguments
from medsets.training.arguments import CONFIG_OVERRIDES_HELP, overridden, parse_arguments, with_overrides
from medsets.training.checkpoints import train_and_save_best
from medsets.training.detection_picture import draw_detections
from medsets.training.full_images import (THRESHOLDS, CentreScorer, ScoringArguments, TileTable, coco_map, dedupe,
                                          f1_table, leak_free_sources, map_table, objects_name,
                                          tile_table, to_full_image)
from medsets.training.image_pipeline import AugmentOptions, BatchAugment, decode_once, fits_decode_cache
from medsets.training.splits import carve, oversampled

logger = logging.getLogger("finetune_detection")
MODEL_SIZES = {
    # RT-DETR-R18 (PekingU/rtdetr_r18vd): ResNet-18-vd, hybrid encoder 256 wide (expansion 0.5), 3 decoder layers.
    "r18": dict(depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64, d_model=256, ffn=1024,
                heads=8, decoder_layers=3, num_queries=300, num_denoising=100),
    # For CPU runs and tests: ~1.7M parameters, ~60 training images/s at 128 px on 2 cores.
    "tiny": dict(depths=[1, 1, 1, 1], hidden_sizes=[32, 64, 128, 256], embedding_size=32, d_model=64, ffn=256,
                 heads=4, decoder_layers=2, num_queries=50, num_denoising=20),
}


@dataclass
class DataArguments:
    dataset: str = field(metadata={
        "aliases": ["--dataset_name"], "help": "A folder written by `medsets build` (gzmh, or hep2 with icpr2012_slides) "
                                           "or a Hub id."})
    config: str = field(default="tiles", metadata={
        "aliases": ["--dataset_config_name"], "help": "Dataset config: gzmh tiles (with source_image_id, offset), "
                                                           "or whole images with objects (hep2 icpr2012_slides)."})
    train_split: str = field(default="train")
    validation_split: str | None = field(default=None, metadata={
        "help": "Split to choose the epoch and score threshold on. Default: whole source images carved from train."})
    test_split: str = field(default="test", metadata={"help": "Split scored at the end (GZMH V2: test = both parts)."})
    validation_fraction: float = field(default=0.15, metadata={
        "help": "Share of train's source images carved out (0.15)."})
    image_size: int = field(default=512, metadata={
        "help": "Model input size (512: the tiles' own); tiles are decoded once at it."})
    decode_cache_gb: float = field(default=16.0, metadata={
        "help": "Decode every tile once into a memory-mapped cache when it needs at most this many GB (all real "
                "GZMH tiles at 512 px: ~30 GB); above, the DataLoader workers decode them every epoch."})
    oversample_positive: int = field(default=5, metadata={
        "help": "Tiles holding objects appear this many times per epoch (5; most GZMH tiles hold no mitosis)."})
    objects_name: str = field(default="", metadata={
        "help": "What the objects are, plural, as metrics.json (the count's key), table.md and detections.png name "
                "them. Default: mitoses (GZMH; also scored by the GZMH authors' rule), cells (HEp-2 slides: their "
                "classes are the cells' patterns), else objects."})
    color_jitter: bool = field(default=True, metadata={
        "help": "Stain-level jitter on the device: brightness 0.8-1.2, contrast and saturation 0.2, hue 0.02."})
    decode_workers: int | None = field(default=None, metadata={
        "help": "Processes decoding tiles (default: all cores)."})


@dataclass
class ModelArguments:
    model: str | None = field(default=None, metadata={"aliases": ["--model_name_or_path"],
        "help": "Hub id or folder of RT-DETR weights (PekingU/rtdetr_r18vd); the head is re-made for one class. "
                "Default: a model built from a config and trained from scratch (works offline)."})
    model_size: str = field(default="r18", metadata={"help": "Size built from a config: r18 or tiny (CPU runs)."})
    config_overrides: str | None = field(default=None, metadata={"help": CONFIG_OVERRIDES_HELP})


@dataclass
class FinetuneTrainingArguments(SharedTrainingArguments):
    """The classification script's Trainer defaults (evaluate and keep the best epoch, cosine schedule with
    warm-up, DataLoader workers on every core, bf16 where the GPU has it), with RT-DETR's AdamW recipe (weight
    decay 1e-4, gradients clipped at 0.1) and the best epoch chosen by validation F1 (see `evaluate`)."""
    output_dir: str | None = field(default="runs/rtdetr-gzmh")
    per_device_train_batch_size: int = field(default=16)
    per_device_eval_batch_size: int = field(default=32)
    weight_decay: float = field(default=1e-4)
    max_grad_norm: float = field(default=0.1)
    warmup_steps: float = field(default=0.05)
    metric_for_best_model: str | None = field(default="selection_score")


def symmetry(pixels: torch.Tensor, boxes: torch.Tensor, transpose: bool, flip_x: bool, flip_y: bool):
    """One of the 8 symmetries of the square (flips and turns by 90 degrees) on a (C, S, S) image and its
    boxes (cx, cy, w, h, fractions): transposing swaps x and y, a flip mirrors the centre."""
    boxes = boxes.clone()
    if transpose:
        pixels, boxes = pixels.transpose(-1, -2), boxes[:, [1, 0, 3, 2]]
    if flip_x:
        pixels, boxes[:, 0] = pixels.flip(-1), 1 - boxes[:, 0]
    if flip_y:
        pixels, boxes[:, 1] = pixels.flip(-2), 1 - boxes[:, 1]
    return pixels, boxes


class TileSet(torch.utils.data.Dataset):
    """Tiles (uint8 (3, S, S), from the memory-mapped cache at `path`, or decoded from `split` when there is
    none) with their boxes; `rows` may repeat tiles (oversampling), which DDP's sampler then shards like any
    other index."""

    def __init__(self, path: Path | None, split: datasets.Dataset, size: int, table: TileTable, rows, augment: bool):
        self.path, self.split, self.size, self.table = path, split, size, table
        self.rows, self.augment = np.asarray(rows, np.int64), augment
        self._pixels = None  # opened lazily in each DataLoader worker

    def with_rows(self, rows, augment: bool = False) -> TileSet:
        return TileSet(self.path, self.split, self.size, self.table, rows, augment)

    def tile(self, row: int) -> np.ndarray:
        if self.path is None:
            image = self.split[row]["image"].convert("RGB")
            if image.size != (self.size, self.size):
                image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
            return np.asarray(image).transpose(2, 0, 1)
        if self._pixels is None:
            self._pixels = np.load(self.path, mmap_mode="r")
        return self._pixels[row]

    def __len__(self):
        return len(self.rows)

    @property
    def references(self) -> dict:
        """The counted objects' centres of the full images these tiles come from."""
        return self.table.references_of(self.rows)

    def __getitem__(self, index):
        row = int(self.rows[index])
        pixels, boxes = torch.from_numpy(np.array(self.tile(row))), torch.from_numpy(self.table.boxes[row])
        if self.augment:  # torch's RNG: seeded differently in every worker, unlike numpy's
            pixels, boxes = symmetry(pixels, boxes, *(torch.rand(3) < 0.5).tolist())
        labels = {"class_labels": torch.from_numpy(self.table.labels[row]), "boxes": boxes.float()}
        return {"pixel_values": pixels, "labels": labels, "row": row}

    def __getstate__(self):
        return {**self.__dict__, "_pixels": None}


def collate(samples):
    """DETR models take a list of per-image target dicts; pixels are stacked."""
    return {"pixel_values": torch.stack([s["pixel_values"] for s in samples]),
            "labels": [s["labels"] for s in samples], "row": torch.tensor([s["row"] for s in samples])}


# -- training and scoring --------------------------------------------------------------------------------
class DetectionTrainer(Trainer):
    """Trainer whose tiles arrive as uint8 (jittered and normalised on the device) and whose evaluation is
    the full-image detection F1 at the best threshold (eval_f1, eval_selection_score for the best epoch).
    `counted` names the objects (mitoses, cells): the GZMH authors' rule is scored for mitoses only."""

    def __init__(self, *args, augment: BatchAugment, scoring: ScoringArguments, counted: str = "mitoses", **kwargs):
        super().__init__(*args, **kwargs)
        self.augment, self.scoring, self.scorer = augment, scoring, CentreScorer(scoring, counted=counted)
        self.model_accepts_loss_kwargs = False  # the loss is RT-DETR's own; Trainer scales it for accumulation

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixels = self.augment(inputs["pixel_values"], train=model.training)
        outputs = model(pixel_values=pixels, labels=inputs["labels"])
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    @torch.no_grad()
    def detect(self, tiles: TileSet) -> dict[int, np.ndarray]:
        """source_image_id -> deduplicated full-image detections [x, y, score, w, h] scoring at least the lowest
        threshold. Each rank runs its share of the images; all ranks get all detections."""
        table, model = tiles.table, self.model
        was_training = model.training
        model.eval()
        images = np.unique(table.source[tiles.rows])
        mine = images[self.args.process_index::self.args.world_size]
        loader = torch.utils.data.DataLoader(
            tiles.with_rows(tiles.rows[np.isin(table.source[tiles.rows], mine)]),
            batch_size=self.args.per_device_eval_batch_size, collate_fn=collate, num_workers=0)
        found = {int(s): [np.zeros((0, 6))] for s in mine}
        fixed = self.scoring.score_threshold
        low = min(THRESHOLDS + ([] if fixed is None else [fixed]))
        for batch in loader:
            with self.autocast_smart_context_manager():
                out = model(pixel_values=self.augment(batch["pixel_values"].to(self.args.device), train=False))
            # RT-DETR's focal loss: a sigmoid per query and class; a query's detection is its best class.
            scores, labels = out.logits.float().sigmoid().max(dim=-1)
            boxes = out.pred_boxes.float().cpu().numpy()
            for row, tile_scores, tile_labels, tile_boxes in zip(batch["row"].tolist(), scores.cpu().numpy(),
                                                                 labels.cpu().numpy(), boxes):
                found[int(table.source[row])].append(to_full_image(
                    tile_scores, tile_boxes, table.offset[row], table.size[row], table.core[row], low, tile_labels))
        model.train(was_training)
        found = {s: dedupe(np.concatenate(parts), self.scoring.dedupe_radius) for s, parts in found.items()}
        if self.args.world_size > 1 and dist.is_initialized():
            shares = [None] * self.args.world_size
            dist.all_gather_object(shares, found)
            found = {s: rows for share in shares for s, rows in share.items()}
        return found

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Validation F1 on full images, logged and passed to the callbacks as Trainer's own evaluate does,
        so best-checkpoint tracking and save_total_limit see it. The epoch is chosen by `selection_score`: the
        F1, ties broken by the mean F1 over the threshold grid. A small validation set soon scores F1 1.0 every
        epoch, and Trainer would keep the first of them (measured: epoch 2 of 20); the grid mean prefers the
        model that is right over a wider range of thresholds. Its weight, 1e-9, is below the smallest step of
        an F1 over thousands of objects, so it only ever breaks ties."""
        tiles = eval_dataset if eval_dataset is not None else self.eval_dataset
        start = time.time()
        chosen, grid = self.scorer.sweep(self.detect(tiles), tiles.references)
        chosen["selection_score"] = chosen["f1"] + 1e-9 * float(np.mean([s["f1"] for s in grid]))
        # Trainer logs numbers: the authors' rule (mitoses only) goes in as its own keys (gzmh_authors_f1, ...).
        authors = {f"gzmh_authors_{k}": v for k, v in chosen.get("gzmh_authors", {}).items()}
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in {**chosen, **authors}.items()
                   if k not in ("matching", "gzmh_authors")}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 3)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# -- model and outputs -------------------------------------------------------------------------------------
def build_model(args: ModelArguments, image_size: int, categories: list[str]):
    # A new class head starts at score 0.01 (RT-DETR's prior; transformers' default for one class is 0.5, which
    # makes every query a detection until training pushes them down).
    labels = {"id2label": dict(enumerate(categories)), "label2id": {name: i for i, name in enumerate(categories)},
              "initializer_bias_prior_prob": 0.01}
    if args.model:
        model = RTDetrForObjectDetection.from_pretrained(args.model, num_labels=len(categories),
                                                         ignore_mismatched_sizes=True, **labels)
        processor = AutoImageProcessor.from_pretrained(args.model)
        processor.size = {"height": image_size, "width": image_size}  # what the tiles are decoded at
        return model, processor, f"{args.model} (fine-tuned)"
    if args.model_size not in MODEL_SIZES:
        raise SystemExit(f"--model_size {args.model_size}: choose {', '.join(MODEL_SIZES)}")
    shape = MODEL_SIZES[args.model_size]
    backbone = RTDetrResNetConfig(layer_type="basic", depths=shape["depths"], hidden_sizes=shape["hidden_sizes"],
                                  embedding_size=shape["embedding_size"], out_indices=[2, 3, 4])
    d = shape["d_model"]
    config = RTDetrConfig(
        backbone_config=backbone, encoder_in_channels=shape["hidden_sizes"][1:], encoder_hidden_dim=d, d_model=d,
        decoder_in_channels=[d] * 3, encoder_ffn_dim=shape["ffn"], decoder_ffn_dim=shape["ffn"], hidden_expansion=0.5,
        encoder_attention_heads=shape["heads"], decoder_attention_heads=shape["heads"],
        decoder_layers=shape["decoder_layers"], num_queries=shape["num_queries"], num_denoising=shape["num_denoising"],
        num_labels=len(categories), freeze_backbone_batch_norms=False, **labels)  # frozen batch norms only suit pretrained weights
    model = RTDetrForObjectDetection(with_overrides(config, args.config_overrides))
    for module in model.modules():  # RT-DETR initialises batch norm scales at ~N(0, 0.01), made for loading weights
        if isinstance(module, torch.nn.BatchNorm2d):  # over; from scratch, scale 1 learns far faster (measured)
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
    processor = RTDetrImageProcessor(size={"height": image_size, "width": image_size}, do_normalize=True)
    return model, processor, f"RT-DETR-{args.model_size} {image_size}² (from scratch{overridden(args)})"


@dataclass
class Run:
    trainer: DetectionTrainer
    processor: object
    splits: dict  # name -> datasets.Dataset (the test split's tiles are drawn in detections.png)
    sets: dict  # name -> TileSet
    categories: list[str]  # the dataset's object classes
    counted: str  # what the objects are, plural (mitoses, cells): the results' and the table's word
    model_name: str
    notes: list[str]
    data_args: DataArguments
    scoring: ScoringArguments


def set_up(argv: list[str] | None = None) -> Run:
    # RT-DETR's fine-tuning step for pretrained weights; from scratch a larger one (5e-4 to 2e-3 measured alike).
    data_args, model_args, scoring, training_args = parse_arguments(
        (DataArguments, ModelArguments, ScoringArguments, FinetuneTrainingArguments), argv, logger, (1e-4, 1e-3), __doc__)
    set_seed(training_args.seed)

    # 1. Data: validation as whole source images, every tile decoded once.
    dataset = datasets.load_dataset(data_args.dataset, data_args.config)
    if "objects" not in dataset[data_args.train_split].column_names:
        raise SystemExit(f"{data_args.dataset} {data_args.config}: no `objects` column; use a detection config "
                         "(gzmh tiles, hep2 icpr2012_slides)")
    if data_args.oversample_positive < 1:
        raise SystemExit("--oversample_positive must be at least 1")
    categories = dataset[data_args.train_split].features["objects"]["category"].feature.names
    counted = objects_name(categories, data_args.objects_name)
    notes, names = [], {"train": data_args.train_split, "test": data_args.test_split}
    if "offset" not in dataset[data_args.train_split].column_names:
        notes.append(f"whole images (no tiles): one tile per image, resized to {data_args.image_size}x"
                     f"{data_args.image_size}")
    if data_args.validation_split:
        names["validation"] = data_args.validation_split
    splits = {name: dataset[split] for name, split in names.items() if split in dataset}
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "medsets-decoded"
    decoded = {name: None for name in splits}
    if fits_decode_cache(splits, 3 * data_args.image_size ** 2, data_args.decode_cache_gb, notes):
        with training_args.main_process_first(desc="decoding tiles"):
            decoded = {name: decode_once(ds, data_args.image_size, False,
                                         data_args.decode_workers or os.cpu_count() or 1, cache)
                       for name, ds in splits.items()}
    tables = {name: tile_table(ds) for name, ds in splits.items()}
    rows = {name: np.arange(len(ds)) for name, ds in splits.items()}
    if "validation" not in splits:  # carved rows index the decoded train array: no second decode per seed
        source = tables["train"].source
        rows["train"], rows["validation"] = carve(np.zeros_like(source), source, data_args.validation_fraction,
                                                  training_args.seed)
        if not len(rows["validation"]):
            raise SystemExit(f"too few source images in {data_args.train_split!r} to carve out "
                             f"{data_args.validation_fraction:.0%}: raise it or pass --validation_split")
        splits["validation"], decoded["validation"], tables["validation"] = (
            splits["train"], decoded["train"], tables["train"])
        notes.append(f"validation: {len(np.unique(tables['train'].source[rows['validation']]))} whole source images "
                     f"({data_args.validation_fraction:.0%}) of {data_args.train_split!r}, seed {training_args.seed}")
    positive = np.array([len(tables["train"].boxes[r]) > 0 for r in rows["train"]], bool)
    notes.append(f"train: {positive.sum()} of {len(rows['train'])} tiles hold objects, each seen "
                 f"{data_args.oversample_positive}x per epoch")
    rows["train"] = oversampled(rows["train"], positive, data_args.oversample_positive)
    sets = {name: TileSet(decoded[name], splits[name], data_args.image_size, tables[name], rows[name],
                          augment=name == "train") for name in rows}
    logger.info("tiles per split %s; %s", {k: len(v) for k, v in sets.items()}, "; ".join(notes))

    # 2. Model and Trainer.
    model, processor, model_name = build_model(model_args, data_args.image_size, categories)
    normalised = getattr(processor, "do_normalize", True)  # RT-DETR's COCO weights take plain [0, 1] pixels
    augment = BatchAugment(AugmentOptions(color_jitter=data_args.color_jitter),
                           processor.image_mean if normalised else [0.0] * 3,
                           processor.image_std if normalised else [1.0] * 3, jitter=BatchAugment.STAIN_JITTER)
    trainer = DetectionTrainer(model=model, args=training_args, train_dataset=sets["train"],
                               eval_dataset=sets["validation"], data_collator=collate, augment=augment, scoring=scoring,
                               counted=counted)
    return Run(trainer, processor, splits, sets, categories, counted, model_name, notes, data_args, scoring)


def main(argv: list[str] | None = None) -> dict:
    run = set_up(argv)
    trainer, args = run.trainer, run.trainer.args
    train_and_save_best(trainer, run.processor)

    # 3. The best epoch on full images: the threshold chosen on validation, then applied to test.
    results = {"dataset": run.data_args.dataset, "config": run.data_args.config, "model": run.model_name,
               "settings": {"image_size": run.data_args.image_size, "match_radius": run.scoring.match_radius,
                            "dedupe_radius": run.scoring.dedupe_radius, "thresholds": THRESHOLDS,
                            "oversample_positive": run.data_args.oversample_positive, "seed": args.seed,
                            "learning_rate": args.learning_rate, "epochs": args.num_train_epochs,
                            "batch_size": args.per_device_train_batch_size * args.world_size},
               "notes": run.notes,
               "split_sizes": {name: {"images": len(tiles.references), "tiles": len(set(tiles.rows))}
                               for name, tiles in run.sets.items()},
               "train_samples_per_epoch": len(run.sets["train"]),
               "best_checkpoint": trainer.state.best_model_checkpoint}
    scored = [n for n in ("validation", "test") if n in run.sets]
    found = {name: trainer.detect(run.sets[name]) for name in scored}
    free = leak_free_sources(run.splits, scored[-1], run.sets[scored[-1]].table)  # the images it never met
    results |= trainer.scorer.report(found, {name: run.sets[name].references for name in scored}, free)
    for name in scored:  # COCO mAP, class-aware, on every detection scoring at least the lowest threshold
        tiles = run.sets[name]
        results[name]["coco"] = coco_map(found[name], tiles.table.reference_boxes_of(tiles.rows), run.categories,
                                         interval=name == scored[-1] and trainer.is_world_process_zero(),
                                         unit=trainer.scorer.unit)
    if trainer.is_world_process_zero():
        write_outputs(Path(args.output_dir), results, run, found)
    if args.push_to_hub:
        trainer.push_to_hub(dataset=run.data_args.dataset)
    return results


def write_outputs(out: Path, results: dict, run: Run, found: dict):
    scored = "test" if "test" in results else "validation"
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "table.md").write_text(f1_table(results, run.model_name, run.data_args.dataset, run.scoring, run.counted) + "\n"
                                  + map_table(results[scored]["coco"], run.data_args.dataset, scored, run.counted))
    draw_detections(run.splits[scored], run.sets[scored].table, run.sets[scored].rows, found[scored],
                    results[scored]["threshold"], run.scoring.match_radius, out / "detections.png",
                    categories=run.categories, what=run.counted)
    logger.info("%s F1 %.3f (precision %.3f, recall %.3f) at threshold %g, COCO mAP %.3f (mAP@.50 %.3f); written "
                "to %s", scored, results[scored]["f1"], results[scored]["precision"], results[scored]["recall"],
                results[scored]["threshold"], results[scored]["coco"]["map"], results[scored]["coco"]["map_50"], out)
    if f"{scored}_without_twins" in results:
        logger.info("%s F1 on the %d of %d images without a twin in the splits it learnt from: %.3f", scored,
                    *(results[f"{scored}_without_twins"][k] for k in ("images", "of", "f1")))


if __name__ == "__main__":
    main()
