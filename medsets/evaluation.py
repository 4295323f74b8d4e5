"""`medsets evaluate`: score a folder of predicted masks with a dataset's evaluation toolkit.

The toolkit itself is the local `evaluate` module medsets.metrics.segmentation (one definition of the
metrics for the CLI, the fine-tuning scripts and users of `evaluate.load`). Here its functions are called
one image at a time, so memory stays flat however many predictions there are.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from datasets import Image

from .checks import BuildError, Problem
from .layout import is_image
from .source import stem

# What each convention of the toolkit equals (medsets.metrics.segmentation says how).
REFERENCES = {"uacanet": "UACANet's Eval.py, the BIS5k toolkit", "pysodmetrics": "the pysodmetrics package"}



def evaluate_folder(name: str, predictions: Path, dataset: Path, split: str, csv_path: Path | None,
                    allow_missing: bool = False, convention: str = "uacanet") -> int:
    from datasets import get_dataset_split_names, load_dataset
    from tqdm.auto import tqdm

    from .export import is_medsets_folder
    from .metrics import segmentation as toolkit

    if not predictions.is_dir():
        raise BuildError(f"{predictions}: not a folder of predicted masks.")
    if not dataset.is_dir():
        raise BuildError(f"{dataset}: no built dataset here.", hint=f"Build it first: medsets build {name} --source "
                                                                    f"RAW --out {dataset}, or pass --dataset.")
    if not is_medsets_folder(dataset):
        raise BuildError(f"{dataset}: not a folder built by medsets (no README.md and reports/).",
                         hint=f"Pass --dataset the folder that `medsets build {name}` wrote.")
    splits = get_dataset_split_names(str(dataset))
    if split not in splits:
        raise BuildError(f"{dataset} has no split {split!r}; it has {', '.join(splits)}.", hint="Pass --split.")
    predicted = {stem(p.name).lower(): p for p in sorted(predictions.iterdir())
                 if p.is_file() and is_image(p.name)}
    rows = load_dataset(str(dataset), split=split)
    if not isinstance(rows.features.get("label"), Image):
        raise BuildError(f"{dataset}: its `label` is not a mask, so there is nothing to score masks against.",
                         hint="medsets evaluate scores segmentation datasets (bis5k).")
    scores, problems, missing, seen = [], [], [], set()
    for row in tqdm(rows, desc=f"scoring {split}", unit="image"):
        key = stem(row["file_name"]).lower()
        if key not in predicted:
            missing.append(row["file_name"])
            continue
        seen.add(key)
        truth = np.asarray(row["label"]) > 0
        try:
            scores.append(toolkit.toolkit_scores(toolkit.decode(predicted[key].read_bytes()), truth, convention))
        except ValueError as err:  # size mismatch or an unreadable file
            problems.append(Problem("unusable prediction", str(predicted[key]), str(err)))
    extra = sorted(str(p) for key, p in predicted.items() if key not in seen)
    if not allow_missing:  # a score over a subset is not the split's score
        problems += [Problem("missing prediction", file, f"no predicted mask named {stem(file)}.* in {predictions}/")
                     for file in missing]
    if problems or not scores:
        raise BuildError(f"{name}/{split}: {len(scores)} of {len(rows)} images scored.", problems,
                         hint="Predictions must be mask images named like the dataset's images (matched by file "
                              "stem), the same size as them; --allow-missing scores the ones there are.")
    table = toolkit.summarize(scores)
    for label, names in (("missing predictions (not scored)", missing), ("predictions with no image", extra)):
        if names:
            print(f"{len(names)} {label}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}", file=sys.stderr)
    reference = REFERENCES[convention]
    print(f"{name}/{split}: {len(scores)} of {len(rows)} images scored against {dataset} (convention "
          f"{convention}: {reference})")
    for column, value in table.items():
        print(f"  {column:8s} {value:.4f}")
    for column, count in toolkit.undefined_in_reference(scores).items():
        print(f"  note: {column} is NaN in {reference} for {count} of these images; counted here as the module "
              "documents (0, or an empty quadrant weighted 0)")
    csv_path = csv_path or predictions.parent / f"{name}-{split}-scores.csv"
    try:
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["method", *table, "images_scored", "images_in_split"])
            writer.writerow([f"{predictions.name} ({convention})", *(f"{v:.6f}" for v in table.values()), len(scores),
                             len(rows)])
    except OSError as err:
        raise BuildError(f"could not write the scores to {csv_path}: {err.strerror or err}.",
                         hint="Pass --csv a file in a folder you can write to.") from None
    print(f"Wrote {csv_path}")
    return 0
