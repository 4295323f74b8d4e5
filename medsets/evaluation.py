"""`medsets evaluate`: score a results file against a built split, the way the dataset's papers do.

What the split's `label` is decides how:
- a class label (hep2, leukemia): a CSV of predicted labels, one row per image (`file_name` or `image_id`,
  and the predicted class by name or id), scored by medsets.metrics.classification and laid out as the
  HEp-2 report's Table 3 (F1 per class, accuracy), with the contests' mean class accuracy and C-NMC's
  weighted F1;
- a mask (bis5k, gzmh): a folder of predicted masks matched by file stem, scored by the BIS5k toolkit
  (medsets.metrics.segmentation, `--convention`), one image at a time so memory stays flat;
- gzmh with a CSV instead (image, x, y[, score]): mitosis detection F1 against the `full` config's
  centroids, under both matching rules of medsets.metrics.mitosis, at `--threshold` or the best one.

Every image of the split needs its prediction and every prediction its image: anything missing, extra
or misnamed is listed and the exit status is 2, unless --allow-missing (then the table and the CSV say
how many were scored of how many).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Image

from .confidence import compare as compare_sets
from .confidence import (Scored, comparison_lines, detections_scored, interval_lines, intervals_of, labels_scored,
                         masks_scored, units_of)
from .intervals import Bootstrap
from .label_files import canonical
from .published import comparable_lines
from .metrics.classification.table3 import table3
from .checks import BuildError, Problem
from .predictions import image_keys, label_map_values, mask_problem, predicted_masks, read_results, row_of
from .source import stem

# What each convention of the toolkit equals (medsets.metrics.segmentation says how).
REFERENCES = {"uacanet": "UACANet's Eval.py, the BIS5k toolkit", "pysodmetrics": "the pysodmetrics package"}
MITOSIS_THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.951, 0.05)]
KEY_COLUMNS = ("file_name", "image_id", "image", "file", "name", "id")
LABEL_COLUMNS = ("label", "prediction", "predicted", "pred", "class")


def evaluate_predictions(name: str, predictions: Path, dataset: Path, split: str, csv_path: Path | None,
                         allow_missing: bool = False, convention: str = "uacanet", config: str | None = None,
                         threshold: float | None = None, compare: Path | None = None, json_path: Path | None = None,
                         bootstrap: Bootstrap | None = None, overwrite: bool = False) -> int:
    """The `medsets evaluate` command: check the inputs, pick the scoring by the split's label, print with
    intervals (and a paired comparison with --compare), write CSV (and JSON)."""
    from datasets import disable_progress_bars, get_dataset_config_names, get_dataset_split_names, load_dataset

    from .export import is_medsets_folder

    disable_progress_bars()  # loading a built split takes a moment; the scoring has its own bar

    for given in (predictions, compare) if compare else (predictions,):
        if not given.exists():
            raise BuildError(f"{given}: no such file or folder of predictions.")
    if compare and compare.is_file() != predictions.is_file():
        raise BuildError(f"--compare {compare}: a {'file' if compare.is_file() else 'folder'}, but --predictions "
                         f"{predictions} is a {'file' if predictions.is_file() else 'folder'}; compare like with like.")
    bootstrap = bootstrap or Bootstrap()
    if csv_path is None:  # named after the predictions: scoring results/UNet after results/BCSNet keeps both
        csv_path = scores_file(predictions, name, split)
        if csv_path.exists() and not overwrite:
            raise BuildError(f"{csv_path} exists (the scores of an earlier run of these predictions); nothing was "
                             "scored.", hint="Pass --overwrite to replace it, or --csv PATH to write elsewhere.")
    if not dataset.is_dir():
        raise BuildError(f"{dataset}: no built dataset here.", hint=f"Build it first: medsets build {name} --source "
                                                                    f"RAW --out {dataset}, or pass --dataset.")
    if not is_medsets_folder(dataset):
        raise BuildError(f"{dataset}: not a folder built by medsets (no README.md and reports/).",
                         hint=f"Pass --dataset the folder that `medsets build {name}` wrote.")
    mitoses = predictions.is_file() and name == "gzmh"
    configs = get_dataset_config_names(str(dataset))
    if mitoses or (name == "gzmh" and config is None and "full" in configs):
        config = "full"  # whole fields, as the GZMH papers score (the folder's default config is its tiles)
    if config is not None and config not in configs:
        raise BuildError(f"{dataset} has no config {config!r}; it has {', '.join(configs)}.",
                         hint="Build it (medsets build ... --config), or pass --config." if not mitoses else
                         "Mitoses are scored on whole images: medsets build gzmh --config full.")
    splits = get_dataset_split_names(str(dataset), config)
    if split not in splits:
        raise BuildError(f"{dataset} has no split {split!r}; it has {', '.join(splits)}.", hint="Pass --split.")
    rows = load_dataset(str(dataset), config, split=split)
    label = rows.features.get("label")
    twins, compared = rows_with_a_twin(dataset, config, split, splits, rows)
    def score(path: Path, quiet: bool = False):
        if mitoses:
            return score_mitoses(rows, path, allow_missing, threshold, twins)
        if isinstance(label, ClassLabel):
            if not path.is_file():
                raise BuildError(f"{path}: a folder; {name} is scored from a CSV of predicted labels.",
                                 hint="One row per image: file_name (or image_id), label (name or id).")
            return score_labels(rows, path, label, allow_missing, name, config, twins, quiet)
        if isinstance(label, Image):
            if not path.is_dir():
                raise BuildError(f"{path}: a file; {name} is scored from a folder of predicted masks"
                                 + (", or, for mitoses, from a CSV of image, x, y, score" if name == "gzmh" else "") + ".")
            return score_masks(rows, path, allow_missing, convention, twins)
        raise BuildError(f"{dataset}: its split has no `label` to score against.")

    table, counts, clean, scored_items = score(predictions)
    title = ("mitosis detection F1 on whole images, both rules of medsets.metrics.mitosis" if mitoses else
             "medsets.metrics.classification" if isinstance(label, ClassLabel) else
             f"convention {convention}: {REFERENCES[convention]}")
    scored, total = counts
    print(f"{name}/{split}: {scored} of {total} images scored against {dataset} ({title})")
    width = max(8, *map(len, table))
    for column, value in table.items():
        print(f"  {column:{width}s} {value:.4f}" if isinstance(value, float) else f"  {column:{width}s} {value}")
    for note in toolkit_notes(table):
        print(f"note: {note}")
    without = f"without a twin in {'/'.join(compared)}"
    if clean and clean[1] == scored:  # the images with a twin were not among those scored
        clean = None
    if clean:  # the score on images the training data never showed, beside the full one
        clean_table, clean_count = clean
        print(f"On the {clean_count} of these {scored} images {without} (the other {scored - clean_count} have a "
              "copy there, pixel-identical or re-imaged: duplicate_group):")
        for column, value in clean_table.items():
            full = table[column]
            print(f"  {column:{width}s} {value:.4f}   (all: {full:.4f})" if isinstance(value, float)
                  else f"  {column:{width}s} {value}")
    elif compared:
        print(f"No scored {split} image has a copy in {'/'.join(compared)} (duplicate_group): the score above "
              "is already free of that leak.")
    units, unit, caveat = units_of(rows, name)
    intervals = intervals_of(scored_items, units, unit, bootstrap)
    free_rows = [i for i in range(len(rows)) if i not in twins]
    free_intervals = intervals_of(scored_items.only(free_rows), units, unit, bootstrap) if clean else {}
    print("\n".join(interval_lines(intervals, bootstrap, caveat, width)))
    if free_intervals:
        print(f"  on the images {without}: " + "; ".join(f"{k} [{i.ci_low:.4f}, {i.ci_high:.4f}]"
                                                          for k, i in free_intervals.items()))
    method = predictions.stem if predictions.is_file() else predictions.name
    comparison = None
    if compare:
        other = score(compare, quiet=True)
        paired, test = compare_sets(scored_items, other[3], units, unit, bootstrap)
        other_name = compare.stem if compare.is_file() else compare.name
        print("\n".join(comparison_lines(method, other_name, paired, test, bootstrap, width)))
        comparison = {"a": str(predictions), "b": str(compare), "paired": paired, "mcnemar": test}
    from .builders import BUILDERS

    published = comparable_lines(BUILDERS[name].PUBLISHED_RESULTS, config or default_config(dataset), split, table)
    if published:
        print("\n".join(published))
    try:
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            bounds = [f"{k} {end}" for k in intervals for end in ("ci_low", "ci_high")]
            writer.writerow(["method", *table, "images_scored", "images_in_split", *bounds, "unit", "n_units"])
            named = f"{method} ({convention})" if isinstance(label, Image) and not mitoses else method

            def row(label_, values, count, found):
                return [label_, *(f"{v:.6f}" if isinstance(v, float) else v for v in values.values()), count, total,
                        *(f"{getattr(i, end):.6f}" for i in found.values() for end in ("ci_low", "ci_high")),
                        unit, next(iter(found.values())).n_units]

            writer.writerow(row(named, table, scored, intervals))
            if clean:
                writer.writerow(row(f"{named} [{without}]", clean[0], clean[1], free_intervals))
        if json_path:
            document = {k: i.as_dict() for k, i in intervals.items()}
            if free_intervals:
                document["without_twins"] = {k: i.as_dict() for k, i in free_intervals.items()}
            if comparison:
                document["comparison"] = comparison
            json_path.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as err:
        raise BuildError(f"could not write the scores to {json_path if json_path and csv_path.exists() else csv_path}: "
                         f"{err.strerror or err}.", hint="Pass --csv (or --json) a file in a folder you can write to.") from None
    print(f"Wrote {csv_path}" + (f" and {json_path}" if json_path else ""))
    return 0


def default_config(dataset: Path) -> str:
    """The config a built folder loads without naming one."""
    from datasets import load_dataset_builder

    return load_dataset_builder(str(dataset)).config.name


def rows_with_a_twin(dataset: Path, config: str | None, split: str, splits: list[str], rows) -> tuple[set[int], list[str]]:
    """The rows of the scored split whose `duplicate_group` they share with a row of a training or validation
    split (an exact copy or the same object imaged again), and which splits those are."""
    from datasets import load_dataset

    from .duplicates import without_a_twin

    compared = [s for s in splits if s != split and not s.startswith("test")]
    if "duplicate_group" not in rows.column_names or not compared:
        return set(), []
    seen = [g for other in compared for g in load_dataset(str(dataset), config, split=other)["duplicate_group"]]
    free = set(without_a_twin(rows["duplicate_group"], seen))
    return {i for i in range(len(rows)) if i not in free}, compared


def unmatched(missing: list[str], extra: list[str], allow_missing: bool, what: str) -> list[Problem]:
    """Images without a prediction and predictions without an image: problems, or (with --allow-missing)
    lines on stderr."""
    if allow_missing:
        for label, names in (("missing predictions (not scored)", missing), ("predictions with no image", extra)):
            if names:
                print(f"{len(names)} {label}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}",
                      file=sys.stderr)
        return []
    return ([Problem("missing prediction", file, f"no {what} for it") for file in missing]
            + [Problem("prediction with no image", entry, "names no image of the split") for entry in extra])


def fail_unless_scored(problems: list[Problem], scored: int, total: int, name: str, hint: str):
    if problems or not scored:
        raise BuildError(f"{name}: {scored} of {total} images scored.", problems,
                         hint=hint + " --allow-missing scores the images that have a prediction.")


# -- masks ------------------------------------------------------------------------------------------------
def toolkit_notes(table: dict) -> list[str]:
    """Sentences for the BIS5k toolkit's numbers that look wrong and are not: each follows its reference code."""
    notes = []
    if "maxEm" in table and table["maxEm"] > 1:
        notes.append(f"maxEm {table['maxEm']:.6f} is above 1: the reference code divides the E-measure's sum over "
                     "an image's N pixels by N - 1, so a perfect prediction scores N / (N - 1) (1.000015 for 256x256).")
    if "meanDic" in table and table["meanDic"] < 1 and table.get("maxDic", 0) > 0.9999:
        notes.append(f"meanDic {table['meanDic']:.4f} below a maxDic of 1: the mean runs over 256 thresholds down "
                     "to 0, where every pixel counts as foreground, so even a perfect prediction stays under 1.")
    if "maxSpe" in table and table["maxSpe"] == 0:
        notes.append("specificity 0: where a prediction finds none of the ground truth (TP = 0), the reference "
                     "code sets Dice, IoU, sensitivity and specificity to 0, whatever the true negatives.")
    return notes


def scores_file(predictions: Path, name: str, split: str) -> Path:
    """Where the scores go when --csv is not given: beside the predictions, named after them."""
    predictions = predictions.resolve()
    return predictions.parent / f"{predictions.stem if predictions.is_file() else predictions.name}-{name}-{split}-scores.csv"


def score_masks(rows, predictions: Path, allow_missing: bool, convention: str,
                twins: set[int]) -> tuple[dict, tuple, tuple | None, Scored]:
    from tqdm.auto import tqdm

    from .metrics import segmentation as toolkit

    predicted, problems = predicted_masks(predictions)
    ambiguous = {stem(Path(p.file).name).lower() for p in problems}
    scores, scored_rows, missing, seen = [], [], [], set()
    for index, row in enumerate(tqdm(rows, desc="scoring", unit="image")):
        key = stem(row["file_name"]).lower()
        if key not in predicted:
            if key not in ambiguous:
                missing.append(row["file_name"])
            continue
        seen.add(key)
        truth = np.asarray(row["label"]) > 0
        wrong = mask_problem(predicted[key], (truth.shape[1], truth.shape[0]))
        if wrong is None:
            mask = toolkit.decode(predicted[key].read_bytes())
            if (ids := label_map_values(mask)) is not None:
                wrong = (f"holds class ids {ids} (a label map): the toolkit scores one binary or grey-level mask "
                         "(0-255) per image; give the class to score as its own mask")
        if wrong is not None:
            problems.append(Problem("unusable prediction", str(predicted[key]), wrong))
            continue
        try:
            scores.append(toolkit.toolkit_scores(mask, truth, convention))
            scored_rows.append(index)
        except ValueError as err:
            problems.append(Problem("unusable prediction", str(predicted[key]), str(err)))
    extra = sorted(str(p) for key, p in predicted.items() if key not in seen)
    problems += unmatched(missing, extra, allow_missing, f"predicted mask named like it in {predictions}/")
    fail_unless_scored(problems, len(scores), len(rows), "masks", "Predictions must be mask images named like the "
                       "dataset's images (matched by file stem), the same size as them.")
    table = toolkit.summarize(scores)
    for column, count in toolkit.undefined_in_reference(scores).items():
        print(f"note: {column} is NaN in {REFERENCES[convention]} for {count} of these images; counted here as "
              "the module documents (0, or an empty quadrant weighted 0)", file=sys.stderr)
    clean = [s for s, index in zip(scores, scored_rows) if index not in twins]
    return (table, (len(scores), len(rows)), (toolkit.summarize(clean), len(clean)) if twins and clean else None,
            masks_scored(scored_rows, scores))


# -- class labels -----------------------------------------------------------------------------------------
def score_labels(rows, path: Path, label: ClassLabel, allow_missing: bool, name: str,
                 config: str | None, twins: set[int], quiet: bool = False) -> tuple[dict, tuple, tuple | None, Scored]:
    from .metrics.classification import confusion, scores

    entries, problems, header = read_results(path, {"image": KEY_COLUMNS, "label": LABEL_COLUMNS})
    keys, truth = image_keys(rows, header.get("image") in ("image_id", "id")), rows["label"]
    predicted, extra, named = {}, [], set()  # named: images the file answers for, well or not
    for entry in entries:
        index = row_of(keys, entry["image"])
        named.add(index)
        raw = entry["label"].strip()
        if raw.lstrip("-").isdigit():
            value = int(raw)
        else:
            spelled = canonical(raw, label.names)
            value = label.names.index(spelled) if spelled else None
        if index is None:
            extra.append(f"{path.name} line {entry['line']}: {entry['image']!r}")
        elif value is None or not 0 <= value < label.num_classes:
            problems.append(Problem("unknown label", str(path), f"line {entry['line']}: {raw!r}; known: "
                                                                f"{', '.join(label.names)} or 0-{label.num_classes - 1}"))
        elif index in predicted:
            problems.append(Problem("duplicate id", str(path), f"line {entry['line']}: {entry['image']!r} again"))
        else:
            predicted[index] = value
    unlabelled = [i for i, t in enumerate(truth) if t < 0]
    if unlabelled:
        problems.append(Problem("unlabelled split", rows.split or "split", f"{len(unlabelled)} images have no "
                                "published label (-1): this split cannot be scored"))
    missing = [rows[i]["file_name"] for i in range(len(rows)) if i not in named and i not in unlabelled]
    problems += unmatched(missing, extra, allow_missing, f"row in {path.name}")
    fail_unless_scored(problems, len(predicted), len(rows), "labels",
                       "Give one row per image: file_name (or image_id), label (a class name or id).")
    def table_of(indices) -> dict:
        result = scores(confusion([predicted[i] for i in indices], [truth[i] for i in indices], label.num_classes),
                        label.names)
        table = {"accuracy": result["accuracy"], "mean_class_accuracy": result["mean_class_accuracy"],
                 "macro_f1": result["macro_f1"], "weighted_f1": result["weighted_f1"]}
        return result, table | {f"f1 {n}": result["f1_by_class"][n] for n in label.names}

    order = sorted(predicted)
    result, table = table_of(order)
    if not quiet:
        print(table3(result, label.names, path.stem, paper=name == "hep2" and config == "icpr2012"))
    clean = [i for i in order if i not in twins]
    return (table, (len(predicted), len(rows)), (table_of(clean)[1], len(clean)) if twins and clean else None,
            labels_scored(order, [predicted[i] for i in order], [truth[i] for i in order], label.num_classes))


# -- mitoses ----------------------------------------------------------------------------------------------
def score_mitoses(rows, path: Path, allow_missing: bool, threshold: float | None,
                  twins: set[int]) -> tuple[dict, tuple, tuple | None, Scored]:
    from .metrics.mitosis import image_counts, summarize

    entries, problems, header = read_results(path, {"image": KEY_COLUMNS, "x": ("x", "cx", "centroid_x"),
                                                    "y": ("y", "cy", "centroid_y"),
                                                    "score": ("score", "confidence", "p")})
    keys = image_keys(rows, header.get("image") in ("image_id", "id"))
    found: dict[int, list] = {i: [] for i in range(len(rows))}
    extra = []
    for entry in entries:
        index = row_of(keys, entry["image"])
        try:
            point = [float(entry["x"]), float(entry["y"])] + ([float(entry["score"])] if entry["score"] else [])
        except ValueError:
            point = [float("nan")]
        if not all(np.isfinite(v) and v >= 0 for v in point):  # NaN, inf, negative: no detector's answer
            problems.append(Problem("bad results file", str(path), f"line {entry['line']}: x, y and score must be "
                                    f"numbers of 0 or more, found {entry['x']!r}, {entry['y']!r}, {entry['score']!r}"))
            continue
        if index is None:
            extra.append(f"{path.name} line {entry['line']}: {entry['image']!r}")
        else:
            found[index].append(point)
    # One row per detection: an image the file never names has no detections, which is an answer (every image
    # is scored); a row naming no image of the split is an error.
    problems += unmatched([], extra, allow_missing, f"row in {path.name}")
    fail_unless_scored(problems, len(rows), len(rows), "mitoses",
                       "One row per detection: image (file_name, stem or image_id), x, y and a score.")
    truths = [objects["centroid"] for objects in rows["objects"]]
    detections = [found[i] for i in range(len(rows))]

    def at(t: float, matching: str, indices=range(len(rows))) -> dict:
        return summarize([image_counts(detections[i], truths[i], 20.0, t, matching) for i in indices], matching)

    chosen = threshold if threshold is not None else max(MITOSIS_THRESHOLDS, key=lambda t: (at(t, "one_to_one")["f1"], -t))

    def table_of(indices) -> dict:
        table = {"threshold": chosen if threshold is not None else f"{chosen:g} (best one-to-one F1 on this split)"}
        for matching in ("one_to_one", "gzmh_authors"):
            table |= {f"{matching} {k}": v for k, v in at(chosen, matching, indices).items()}
        return table

    clean = [i for i in range(len(rows)) if i not in twins]
    per_image = {rule: [image_counts(detections[i], truths[i], 20.0, chosen, rule) for i in range(len(rows))]
                 for rule in ("one_to_one", "gzmh_authors")}
    return (table_of(range(len(rows))), (len(rows), len(rows)), (table_of(clean), len(clean)) if twins and clean else None,
            detections_scored(list(range(len(rows))), per_image))
