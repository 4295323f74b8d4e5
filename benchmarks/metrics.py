"""segmentation-metric: the BIS5k toolkit (medsets.metrics.segmentation) on N mask pairs, against the slow
reference of its definitions."""

from __future__ import annotations

import os
import time

from .common import machine_info, write_json


# -- segmentation-metric: the BIS5k toolkit ------------------------------------------------------------
def metric_pairs(count: int, size: int, seed: int = 0) -> list[tuple]:
    """Blob-shaped ground truths (0/255) and grey-level predictions that roughly follow them."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        field = np.asarray(Image.fromarray(rng.standard_normal((8, 8)).astype(np.float32), mode="F")
                           .resize((size, size), Image.Resampling.BICUBIC))
        truth = (field > np.quantile(field, rng.uniform(0.4, 0.9))).astype(np.uint8) * 255
        noisy = field + rng.normal(0, 0.6, field.shape).astype(np.float32)
        prediction = (255 / (1 + np.exp(-3 * (noisy - np.quantile(field, 0.6))))).astype(np.uint8)
        pairs.append((prediction, truth))
    return pairs


def segmentation_metric(args):
    import evaluate

    from medsets import metric_path
    from medsets.metrics import segmentation as toolkit
    from medsets.metrics.segmentation import reference

    print(f"Making {args.pairs} pairs of {args.size}x{args.size} masks (untimed) ...", flush=True)
    pairs = metric_pairs(args.pairs, args.size)
    results = {}

    def timed(label, work):
        print(f"  {label} ...", flush=True)
        start = time.perf_counter()
        value = work()
        results[label] = {"wall_s": time.perf_counter() - start}
        return value

    direct = timed("toolkit_scores + summarize, 1 process",
                   lambda: toolkit.summarize(toolkit.toolkit_scores(p, g) for p, g in pairs))
    metric = evaluate.load(metric_path("segmentation"))
    for num_proc in sorted({1, os.cpu_count() or 1}):
        via_evaluate = timed(f"evaluate, pack() bytes, num_proc={num_proc}", lambda: metric.compute(
            predictions=[toolkit.pack(p) for p, _ in pairs], references=[toolkit.pack(g) for _, g in pairs],
            num_proc=num_proc))
        assert all(abs(via_evaluate[k] - direct[k]) < 1e-9 for k in direct)
    sample = pairs[:args.reference_sample]
    slow = timed(f"slow reference, {len(sample)} pairs", lambda: reference.ref_toolkit(sample))
    fast_sample = toolkit.summarize(toolkit.toolkit_scores(p, g) for p, g in sample)
    assert all(abs(slow[k] - fast_sample[k]) < 1e-6 for k in slow)
    per_pair_slow = results[f"slow reference, {len(sample)} pairs"]["wall_s"] / len(sample)
    per_pair_fast = results["toolkit_scores + summarize, 1 process"]["wall_s"] / len(pairs)

    print(f"\nBIS5k toolkit on {len(pairs)} pairs of {args.size}x{args.size} masks ({os.cpu_count()} cores):")
    for label, r in results.items():
        print(f"  {label:45s} {r['wall_s']:8.2f} s")
    print(f"  slow reference extrapolated to {len(pairs)} pairs: {per_pair_slow * len(pairs):8.1f} s; fast version is "
          f"{per_pair_slow / per_pair_fast:.0f}x faster per pair ({per_pair_fast * 1000:.1f} vs "
          f"{per_pair_slow * 1000:.0f} ms)")
    print("  scores: " + ", ".join(f"{k} {v:.4f}" for k, v in direct.items()))
    write_json(args.json, {"benchmark": "segmentation-metric", "pairs": len(pairs), "size": args.size,
                           "machine": machine_info(), "stages": results, "scores": direct,
                           "speedup_per_pair": per_pair_slow / per_pair_fast})
