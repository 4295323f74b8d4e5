#!/usr/bin/env python
"""Fine-tune a ViT image classifier on a dataset built by medsets (HEp-2, C-NMC leukemia) with Trainer.

    python scripts/finetune_classification.py --dataset ./hep2 --config icpr2012 --output_dir runs/hep2-2012
    python scripts/finetune_classification.py --dataset ./hep2 --config icpr2012 \\
        --model google/vit-base-patch16-224-in21k --output_dir runs/hep2-2012-in21k        # with a network
    python scripts/finetune_classification.py --dataset ./leukemia --model_size small --output_dir runs/cnmc

`--protocol paper` (the default for hep2 icpr2012) follows the ICPR 2012 report on ConvNeXt-B and CoAtNet
(its sections 3.1-3.2, Tables 1-3; docs/fine-tuning.md): cell mask applied, the official train set
split 5:5 into train/validation (stratified, seeded; `--group_by specimen_id` to split by slide),
Table 1's augmentations, label smoothing 0.1, mixup 0.8 / cutmix 1.0, cosine schedule with warm-up,
the best epoch by validation accuracy (ties: lower loss), flip test-time augmentation. `--protocol
plain` is the usual recipe (random resized crop and flips). Every part can be switched on its own.

The input pipeline keeps a GPU busy: every image is decoded once, at the model's input size, into a
uint8 array on disk (memory-mapped, shared by the DataLoader workers, reused by later runs); workers
crop, flip and RandAugment uint8 tensors; colour jitter, random erasing, mixup and cutmix run on the
whole batch on the GPU, and no step waits for the GPU (non-blocking copies, no per-step NaN test).
Outputs in --output_dir: the model and its image processor, metrics.json, table.md (laid out like the
report's Table 3) and confusion_matrix.png. Test images with a twin in train or validation (the same cell
imaged twice, `duplicate_group`) are also left out and scored again, beside the full score
(`test_without_twins`).

Several GPUs or machines: `accelerate launch scripts/finetune_classification.py ...` or
`torchrun --nproc_per_node 8 scripts/finetune_classification.py ...` (Trainer's DDP).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import evaluate
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from transformers import AutoImageProcessor, Trainer, ViTConfig, ViTForImageClassification, ViTImageProcessor, set_seed
from transformers.modeling_outputs import ImageClassifierOutput

from medsets import metric_path
from medsets.metrics.classification.table3 import table3
from medsets.training.arguments import FinetuneTrainingArguments as SharedTrainingArguments
from medsets.training.arguments import CONFIG_OVERRIDES_HELP, overridden, parse_arguments, with_overrides
from medsets.training.checkpoints import train_and_save_best
from medsets.training.image_pipeline import (AugmentOptions, BatchAugment, DecodedImages, decode_once, mix,
                                             worker_transform)
from medsets.training.splits import carve, leak_free_rows, without_twins_line
from medsets.training.uncertainty import classification_intervals

logger = logging.getLogger("finetune_classification")
VIT_SIZES = {  # the ViT-Ti/S/B shapes of the DeiT and ViT papers
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


@dataclass
class DataArguments:
    dataset: str = field(metadata={
        "aliases": ["--dataset_name"], "help": "A folder written by `medsets build` (./hep2) or a Hub dataset id."})
    config: str | None = field(default=None, metadata={
        "aliases": ["--dataset_config_name"], "help": "Dataset config (hep2: icpr2014, icpr2012)."})
    train_split: str = field(default="train")
    validation_split: str | None = field(default=None, metadata={
        "help": "Split to select the best epoch on. Default: carved from the train split under the paper protocol "
                "(5:5); otherwise the dataset's labelled `validation` split if any, else carved from train."})
    test_split: str = field(default="test", metadata={
        "help": "Split scored at the end. When it is unlabelled (C-NMC's final phase), the labelled validation "
                "split becomes the test set and validation is carved from train, patient-disjoint."})
    validation_fraction: float | None = field(default=None, metadata={
        "help": "Share of the train split carved out for validation (paper protocol 0.5, else 0.1)."})
    group_by: str | None = field(default=None, metadata={
        "help": "Carve validation by whole groups of this column (specimen_id: by slide; patient_id)."})
    apply_mask: bool | None = field(default=None, metadata={
        "help": "Set pixels outside the cell mask to black (paper protocol: on when the dataset has masks)."})
    stretch_contrast: bool = field(default=False, metadata={
        "help": "Scale each image so its brightest pixel is 255 (dim IIF images, e.g. ICPR 2012 'intermediate' "
                "intensity). Not part of the report's protocol."})
    image_size: int = field(default=224, metadata={"help": "Model input size; images are decoded once at it."})
    decode_workers: int | None = field(default=None, metadata={"help": "Processes decoding images (default: all cores)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep this many training images (quick runs)."})


@dataclass
class ModelArguments:
    model: str | None = field(default=None, metadata={"aliases": ["--model_name_or_path"],
        "help": "Hub id or folder of pretrained weights (google/vit-base-patch16-224-in21k). Default: a ViT built "
                "from a config and trained from scratch (works offline)."})
    model_size: str = field(default="base", metadata={"help": "Size built from a config: tiny, small or base."})
    patch_size: int = field(default=16, metadata={"help": "Patch size of a model built from a config."})
    config_overrides: str | None = field(default=None, metadata={"help": CONFIG_OVERRIDES_HELP})


@dataclass
class ProtocolArguments:
    protocol: str = field(default="auto", metadata={
        "help": "paper (the ICPR 2012 report's recipe), plain (crop + flips), or auto: paper for hep2 icpr2012."})
    crop_scale_min: float | None = field(default=None, metadata={"help": "RandomResizedCrop's smallest area share."})
    randaugment: bool | None = field(default=None, metadata={"help": "RandAugment (2 ops, magnitude 9)."})
    color_jitter: bool | None = field(default=None, metadata={
        "help": "Brightness (0.3, 1.5), contrast 0.5, saturation 0.3, hue 0.01 (Table 1)."})
    random_erasing: float | None = field(default=None, metadata={"help": "Probability of erasing a patch (Table 1: 0.5)."})
    label_smoothing: float | None = field(default=None)
    mixup_alpha: float | None = field(default=None)
    cutmix_alpha: float | None = field(default=None)
    tta: bool | None = field(default=None, metadata={"help": "Average over flips when scoring the test split."})


@dataclass
class FinetuneTrainingArguments(SharedTrainingArguments):
    """The shared defaults of medsets.training.arguments: evaluate and keep the best model every epoch,
    cosine schedule with warm-up, DataLoader workers on every core, bf16 where the GPU has it."""
    output_dir: str | None = field(default="runs/vit-classification")


@dataclass
class Protocol:
    crop_scale_min: float
    randaugment: bool
    color_jitter: bool
    random_erasing: float
    label_smoothing: float
    mixup_alpha: float
    cutmix_alpha: float
    tta: bool
    validation_fraction: float
    apply_mask: bool
    mean: float  # Table 1 normalises with mean 0.5, std 0.25 (pretrained weights bring their own)
    std: float

    def augment_options(self) -> AugmentOptions:
        return AugmentOptions(color_jitter=self.color_jitter, random_erasing=self.random_erasing)


PROTOCOLS = {
    "paper": Protocol(crop_scale_min=0.25, randaugment=True, color_jitter=True, random_erasing=0.5, label_smoothing=0.1,
                      mixup_alpha=0.8, cutmix_alpha=1.0, tta=True, validation_fraction=0.5, apply_mask=True,
                      mean=0.5, std=0.25),
    "plain": Protocol(crop_scale_min=0.5, randaugment=False, color_jitter=False, random_erasing=0.0, label_smoothing=0.0,
                      mixup_alpha=0.0, cutmix_alpha=0.0, tta=False, validation_fraction=0.1, apply_mask=False,
                      mean=0.5, std=0.5),
}


def resolve_protocol(args: ProtocolArguments, data_args: DataArguments) -> tuple[str, Protocol]:
    name = args.protocol if args.protocol != "auto" else ("paper" if data_args.config == "icpr2012" else "plain")
    if name not in PROTOCOLS:
        raise SystemExit(f"--protocol {args.protocol}: choose paper, plain or auto")
    chosen = PROTOCOLS[name]
    overrides = {k: v for k, v in asdict(args).items() if k != "protocol" and v is not None}
    if data_args.validation_fraction is not None:
        overrides["validation_fraction"] = data_args.validation_fraction
    if data_args.apply_mask is not None:
        overrides["apply_mask"] = data_args.apply_mask
    return name, Protocol(**{**asdict(chosen), **overrides})


def choose_splits(dataset, data_args: DataArguments, protocol_name: str, protocol: Protocol, seed: int):
    """{'train', 'validation', 'test'?} -> datasets.Dataset, and notes for the metrics file."""
    notes, train = [], dataset[data_args.train_split]
    test = dataset.get(data_args.test_split)
    validation_name = data_args.validation_split
    group_by = data_args.group_by
    if validation_name is None and protocol_name != "paper" and "validation" in dataset:
        validation_name = "validation"
    if test is not None and min(test["label"]) < 0:
        notes.append(f"split {data_args.test_split!r} is unlabelled; the labelled {validation_name!r} split is scored "
                     "as the test set and validation is carved from train")
        test, validation_name = (dataset[validation_name] if validation_name else None), None
        if group_by is None and "patient_id" in train.column_names:
            group_by = "patient_id"  # C-NMC's own splits are subject-disjoint; keep validation so too
    if validation_name is not None:
        validation = dataset[validation_name]
    else:
        labels = np.asarray(train["label"])
        groups = np.asarray(train[group_by]) if group_by else None
        train_rows, validation_rows = carve(labels, groups, protocol.validation_fraction, seed)
        notes.append(f"validation: {protocol.validation_fraction:.0%} of {data_args.train_split!r} carved out "
                     f"(stratified by class{f', whole {group_by} groups' if group_by else ''}, seed {seed})")
        train, validation = train.select(train_rows), train.select(validation_rows)
    if data_args.max_train_samples is not None:
        train = train.shuffle(seed=seed).select(range(min(data_args.max_train_samples, len(train))))
    splits = {"train": train, "validation": validation}
    if test is not None:
        splits["test"] = test
    return splits, notes


class ProtocolTrainer(Trainer):
    """Trainer whose batches arrive as uint8 and are augmented, normalised and mixed on the device."""

    def __init__(self, *args, augment: BatchAugment, protocol: Protocol, **kwargs):
        super().__init__(*args, **kwargs)
        self.augment, self.protocol, self.tta = augment, protocol, False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        x = self.augment(inputs["pixel_values"], train=model.training)
        if model.training:
            classes = self.model.config.num_labels  # `model` may be wrapped (DDP)
            smoothing = self.protocol.label_smoothing
            # scatter rather than one_hot: one_hot checks the label range, a host sync on the GPU
            targets = torch.zeros(len(labels), classes, device=labels.device).scatter_(1, labels[:, None], 1.0)
            targets = targets * (1 - smoothing) + smoothing / classes
            x, targets = mix(x, targets, self.protocol.mixup_alpha, self.protocol.cutmix_alpha)
            logits = model(pixel_values=x).logits
            loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        else:
            logits = model(pixel_values=x).logits
            if self.tta:  # mean probability over the image and its flips
                probs = sum(model(pixel_values=v).logits.float().softmax(-1) for v in (x.flip(-1), x.flip(-2)))
                logits = ((probs + logits.float().softmax(-1)) / 3).log()
            loss = F.cross_entropy(logits.float(), labels)  # plain loss: the tie-break of the paper's selection
        return (loss, ImageClassifierOutput(logits=logits)) if return_outputs else loss


# -- model, metrics, outputs ----------------------------------------------------------------------------
def build_model(args: ModelArguments, label_names: list[str], image_size: int, protocol: Protocol):
    id2label = dict(enumerate(label_names))
    label2id = {v: k for k, v in id2label.items()}
    if args.model:
        model = ViTForImageClassification.from_pretrained(args.model, num_labels=len(label_names), id2label=id2label,
                                                          label2id=label2id, ignore_mismatched_sizes=True)
        processor = AutoImageProcessor.from_pretrained(args.model)
        return model, processor, f"{args.model} (fine-tuned)"
    if args.model_size not in VIT_SIZES:
        raise SystemExit(f"--model_size {args.model_size}: choose {', '.join(VIT_SIZES)}")
    config = with_overrides(ViTConfig(image_size=image_size, patch_size=args.patch_size, num_labels=len(label_names),
                                      id2label=id2label, label2id=label2id, **VIT_SIZES[args.model_size]),
                            args.config_overrides)
    processor = ViTImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[protocol.mean] * 3,
                                  image_std=[protocol.std] * 3, resample=Image.Resampling.BILINEAR)
    name = f"ViT-{args.model_size} /{args.patch_size} {image_size}² (from scratch{overridden(args)})"
    return ViTForImageClassification(config), processor, name


def load_metric():
    return evaluate.load(metric_path("classification"))


def compute_metrics_for(metric, label_names):
    def compute(prediction):
        logits, labels = prediction.predictions, prediction.label_ids
        result = metric.compute(predictions=logits.argmax(-1), references=labels, label_names=label_names)
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        loss = float(-log_probs[np.arange(len(labels)), labels].mean())
        # The report keeps the most accurate epoch and, among equally accurate ones, the lower loss: accuracy
        # moves in steps of 1/N, far more than the loss term (clipped at 50) can.
        selection = result["accuracy"] - min(loss, 50.0) / (100 * len(labels) * 50)
        return {"accuracy": result["accuracy"], "mean_class_accuracy": result["mean_class_accuracy"],
                "macro_f1": result["macro_f1"], "weighted_f1": result["weighted_f1"], "selection_score": selection}
    return compute


def confusion_picture(matrix, label_names: list[str], title: str, path: Path, cell: int = 64):
    """Rows true, columns predicted; colour is the share of the row, the number is the count."""
    matrix = np.asarray(matrix)
    font = ImageFont.load_default(size=13)
    margin = 16 + max(int(font.getlength(n)) for n in label_names)
    size = len(label_names) * cell
    footer = "rows: true class, columns: predicted"
    width = max(margin + size, margin + int(max(font.getlength(title), font.getlength(footer)))) + 16
    canvas = Image.new("RGB", (width, margin + size + 60), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 8), title, fill="black", font=font)
    top = 32 + margin
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i, name in enumerate(label_names):
        draw.text((8, top + i * cell + cell // 2 - 7), name, fill="black", font=font)
        label = Image.new("RGBA", (margin - 8, 16), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((0, 0), name, fill="black", font=font)
        canvas.paste(label.rotate(90, expand=True), (margin + i * cell + cell // 2 - 8, 32), label.rotate(90, expand=True))
        for j in range(len(label_names)):
            shade = int(255 * (1 - 0.85 * shares[i, j]))
            box = [margin + j * cell, top + i * cell, margin + (j + 1) * cell - 1, top + (i + 1) * cell - 1]
            draw.rectangle(box, fill=(shade, shade, 255), outline=(200, 200, 200))
            text = str(int(matrix[i, j]))
            draw.text((box[0] + (cell - font.getlength(text)) / 2, box[1] + cell // 2 - 7), text,
                      fill="white" if shares[i, j] > 0.5 else "black", font=font)
    draw.text((margin, top + size + 4), footer, fill="grey", font=font)
    canvas.save(path)


@dataclass
class Run:
    """Everything `main` needs after set-up; `python -m benchmarks train-classification` times `trainer`."""
    trainer: ProtocolTrainer
    processor: object
    sets: dict
    label_names: list[str]
    model_name: str
    protocol_name: str
    protocol: Protocol
    notes: list[str]
    data_args: DataArguments
    splits: dict  # the datasets rows behind `sets`: their duplicate_group says which test rows have a twin


def set_up(argv: list[str] | None = None) -> Run:
    # From scratch needs a larger step than fine-tuning pretrained weights.
    data_args, model_args, protocol_args, training_args = parse_arguments(
        (DataArguments, ModelArguments, ProtocolArguments, FinetuneTrainingArguments), argv, logger, (5e-5, 5e-4), __doc__)
    protocol_name, protocol = resolve_protocol(protocol_args, data_args)
    set_seed(training_args.seed)

    # 1. Data: splits as the protocol asks, every image decoded once.
    dataset = datasets.load_dataset(data_args.dataset, data_args.config)
    label_names = dataset[data_args.train_split].features["label"].names
    splits, notes = choose_splits(dataset, data_args, protocol_name, protocol, training_args.seed)
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "medsets-decoded"
    with training_args.main_process_first(desc="decoding images"):
        decoded = {name: decode_once(ds, data_args.image_size, protocol.apply_mask,
                                     data_args.decode_workers or os.cpu_count() or 1, cache, data_args.stretch_contrast)
                   for name, ds in splits.items()}
    crop = worker_transform(data_args.image_size, protocol.crop_scale_min, protocol.randaugment)
    sets = {name: DecodedImages(decoded[name], ds["label"], crop if name == "train" else None)
            for name, ds in splits.items()}
    logger.info("protocol %s: %s; splits %s; %s", protocol_name, protocol,
                {k: len(v) for k, v in sets.items()}, "; ".join(notes))

    # 2. Model and Trainer.
    model, processor, model_name = build_model(model_args, label_names, data_args.image_size, protocol)
    augment = BatchAugment(protocol.augment_options(), processor.image_mean, processor.image_std)
    trainer = ProtocolTrainer(model=model, args=training_args, train_dataset=sets["train"],
                              eval_dataset=sets["validation"], compute_metrics=compute_metrics_for(load_metric(), label_names),
                              augment=augment, protocol=protocol)
    return Run(trainer, processor, sets, label_names, model_name, protocol_name, protocol, notes, data_args, splits)


def main(argv: list[str] | None = None) -> dict:
    run = set_up(argv)
    trainer, args = run.trainer, run.trainer.args
    train_and_save_best(trainer, run.processor)

    # 3. Scores of the best epoch: validation, then the test split with flip TTA.
    metric = load_metric()
    results = {"dataset": run.data_args.dataset, "config": run.data_args.config, "model": run.model_name,
               "protocol": run.protocol_name, "protocol_settings": asdict(run.protocol), "notes": run.notes,
               "split_sizes": {k: len(v) for k, v in run.sets.items()}, "best_checkpoint": trainer.state.best_model_checkpoint}
    scored, interval_text = ("test" if "test" in run.sets else "validation"), {}
    for name in [n for n in ("validation", "test") if n in run.sets]:
        trainer.tta = run.protocol.tta and name == "test"
        output = trainer.predict(run.sets[name], metric_key_prefix=name)
        predicted, truth = output.predictions.argmax(-1), output.label_ids
        results[name] = metric.compute(predictions=predicted, references=truth, label_names=run.label_names)
        results[name]["loss"] = output.metrics.get(f"{name}_loss")
        results[name]["tta"] = trainer.tta
        results[name]["intervals"], interval_text[name] = classification_intervals(
            run.splits[name], predicted, truth, len(run.label_names))
        free = leak_free_rows(run.splits, name) if name == scored else None
        if free is not None:  # the score on images the model never met, not even re-imaged
            results[f"{name}_without_twins"] = {**metric.compute(predictions=predicted[free], references=truth[free],
                                                                 label_names=run.label_names),
                                                "images": len(free), "of": len(truth), "intervals": classification_intervals(
                                                    run.splits[name].select(free), predicted[free], truth[free],
                                                    len(run.label_names))[0]}
    trainer.tta = False
    if trainer.is_world_process_zero():
        write_outputs(Path(args.output_dir), results, run, interval_text[scored])
    if args.push_to_hub:
        trainer.push_to_hub(dataset=run.data_args.dataset)
    return results


MEASURES = "accuracy {accuracy:.3f}, mean class accuracy {mean_class_accuracy:.3f}"


def write_outputs(out: Path, results: dict, run: Run, intervals: str):
    scored = "test" if "test" in results else "validation"
    scores = results[scored]
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    leak_free = (without_twins_line(results, scored, run.splits, MEASURES) if f"{scored}_without_twins" in results
                 else f"No duplicate_group column: {run.data_args.dataset} was not built by medsets; twins not looked for.")
    (out / "table.md").write_text(f"{scored} split of {run.data_args.dataset} {run.data_args.config or ''}\n\n"
                                  + table3(scores, run.label_names, run.model_name, run.data_args.config == "icpr2012")
                                  + f"\n{leak_free}\n\n{intervals}\n")
    confusion_picture(scores["confusion_matrix"], run.label_names, f"{scored}: accuracy {scores['accuracy']:.3f}, "
                      f"MCA {scores['mean_class_accuracy']:.3f}", out / "confusion_matrix.png")
    logger.info("%s accuracy %.3f, mean class accuracy %.3f; written to %s", scored, scores["accuracy"],
                scores["mean_class_accuracy"], out)
    logger.info(leak_free)
    logger.info(intervals)


if __name__ == "__main__":
    main()
