"""How the fine-tuning scripts choose their rows, the same way in each: validation carved from a training
split (stratified by class, seeded, and by whole groups such as specimen, patient or source image, so no
group straddles the two), and rare positives repeated within an epoch."""

from __future__ import annotations

import numpy as np


def carve(labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): per class, a seeded shuffle and the first `fraction` to validation.
    With groups, whole groups move (each class's groups by their majority label), one kept in train."""
    rng = np.random.default_rng(seed)
    validation = []
    if groups is None:
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            validation += members[:round(len(members) * fraction)].tolist()
    else:
        majority = {g: np.bincount(labels[groups == g]).argmax() for g in np.unique(groups)}
        for label in sorted(set(majority.values())):
            class_groups = rng.permutation([g for g, m in majority.items() if m == label])
            take = min(round(len(class_groups) * fraction), len(class_groups) - 1)
            for g in class_groups[:take]:
                validation += np.flatnonzero(groups == g).tolist()
    validation = np.sort(np.asarray(validation, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), validation), validation


def oversampled(rows: np.ndarray, positive: np.ndarray, repeat: float) -> np.ndarray:
    """One epoch's rows: every row once, the positive ones (a mask over `rows`) `repeat` times in all
    (fractions rounded); the extra copies follow, and the Trainer's sampler shuffles them in."""
    rows = np.asarray(rows, np.int64)
    return np.concatenate([rows] + [rows[np.asarray(positive, bool)]] * (int(round(repeat)) - 1))


def leak_free_rows(splits: dict, scored: str) -> np.ndarray | None:
    """The rows of split `scored` that share no `duplicate_group` with a split the run learnt from or chose
    its epoch on (every other split but test): the images the model never met, neither as the same pixels
    nor as the same object imaged again. None when the dataset has no `duplicate_group` column."""
    from ..duplicates import without_a_twin

    rows = splits[scored]
    if "duplicate_group" not in rows.column_names:
        return None
    seen = [group for name, split in splits.items() if name not in (scored, "test")
            for group in split["duplicate_group"]]
    return np.asarray(without_a_twin(rows["duplicate_group"], seen), np.int64)


def without_twins_line(result: dict, scored: str, splits: dict, measures: str) -> str:
    """The sentence that puts the leak-free score beside the full one (`result` holds both, as the scripts'
    results do: `scored` and `<scored>_without_twins`), `measures` naming the measure shown in it."""
    free = result[f"{scored}_without_twins"]
    seen = "/".join(name for name in splits if name not in (scored, "test"))
    return (f"On the {free['images']} of {free['of']} {scored} images without a twin in {seen} (duplicate_group: "
            f"the same pixels or the same object imaged again): {measures.format(**free)}; all: "
            f"{measures.format(**result[scored])}.")
