"""train-classification, train-segmentation: the fine-tuning scripts' training img/s against the model-only
ceiling, and their input pipeline alone."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .common import machine_info, write_json


# -- train-classification: the fine-tuning script's training img/s vs the model-only ceiling ------------
def replica_dataset(work: Path, kind: str, scale: float) -> tuple[str, str]:
    """A built dataset folder for `kind` (hep2 icpr2014 / icpr2012 / leukemia / bis5k / gzmh tiles), made
    from a replica once."""
    import medsets
    from medsets import synthetic
    from medsets.export import build
    name, config = {"hep2": ("hep2", "icpr2014"), "hep2-2012": ("hep2", "icpr2012"), "leukemia": ("leukemia", "cnmc"),
                    "bis5k": ("bis5k", "default"), "gzmh-tiles": ("gzmh", "tiles")}[kind]
    out = work / f"{kind}-{scale}"
    if not (out / "data" / config).exists():
        raw = work / f"raw-{kind}-{scale}"
        source = {"hep2": lambda: synthetic.write_hep2_icpr2014(raw, "processed", scale=scale),
                  "hep2-2012": lambda: synthetic.write_hep2_icpr2012(raw, scale=scale),
                  "leukemia": lambda: synthetic.write_leukemia(raw, "kaggle", scale=scale),
                  "bis5k": lambda: synthetic.write_bis5k(raw, scale=scale, size=512),
                  "gzmh-tiles": lambda: synthetic.write_gzmh(raw, "v2", scale=scale)}[kind]()
        print(f"Building a {kind} replica (scale {scale}) in {out} ...", flush=True)
        build(medsets.BUILDERS[name], source, config, out, overwrite=True)
    return str(out), config


def sync_device():
    """Wait for the GPU's queued work (nothing to wait for on the CPU): the ends of every timed window."""
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def loader_alone(trainer, batch_size: int, rounds: int = 3) -> float:
    """Sustained img/s of the script's training DataLoader (workers, collation, pinning, the copy to the
    device) with nothing else to do. Timed from the end of the first round of batches (one per worker,
    which includes starting them) over `rounds` more rounds: every batch then is one the workers made
    while being timed, none drawn from what they had prefetched."""
    loader = trainer.get_train_dataloader()
    workers = max(trainer.args.dataloader_num_workers, 1)
    skip, timed = workers, max(rounds * workers, 8)
    seen, start = 0, None
    while seen < skip + timed:
        for batch in loader:
            seen += 1
            if seen == skip:
                sync_device()
                start = time.perf_counter()
            if seen == skip + timed:
                break
    sync_device()
    return timed * batch_size / (time.perf_counter() - start)


def pipeline_vs_ceiling(run, args, random_batch, loss_of) -> dict:
    """Measured in this process, on the same model object and batch size: (1) steps of the script's own
    trainer (`run.trainer`: DataLoader workers, uint8 batches, augmentation on the device, mixed precision
    as the script does), (2) the ceiling: `random_batch` tensors already on the device through the same
    model, `loss_of(model, batch)`, backward and a fused AdamW step under the same autocast, (3) the input
    pipeline alone (`loader_alone`).

    Workers prefetch two batches each (32 batches with 16), so a few timed steps can run on batches made
    before the clock started and look faster than the workers can keep up with. The sustained rate is
    therefore the lower of (1) and (3), and the ratio is taken on it."""
    import torch
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available()
    total_steps = args.warmup_steps + args.steps
    if args.warmup_steps < 1 or args.steps < 1:
        sys.exit("--warmup_steps and --steps must be at least 1 (the clock starts after the last warm-up step)")

    class StepClock(TrainerCallback):
        """Reads the clock after the last warm-up step and after the last step, synchronising only there: a
        synchronisation every step would leave the GPU idle while the host prepares the next one. On a GPU
        it also lists the host synchronisations of the last warm-up step, batch fetch included (torch's
        sync debug mode), since each one costs every step that idle time."""

        def __init__(self):
            self.times, self.watching, self.syncs = {}, False, []

        def on_step_end(self, training_args, state, control, **kwargs):
            if cuda and state.global_step == args.warmup_steps - 1:
                torch.cuda.set_sync_debug_mode("warn")
                self.watching = True
            if state.global_step in (args.warmup_steps, total_steps):
                if self.watching:
                    torch.cuda.set_sync_debug_mode("default")
                    self.watching = False
                    self.syncs = [f"{Path(w.filename).name}:{w.lineno}" for w in caught
                                  if "synchronizing CUDA operation" in str(w.message)]
                sync_device()
                self.times[state.global_step] = time.perf_counter()

    clock = StepClock()
    run.trainer.add_callback(clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.trainer.train()
    images = args.steps * args.batch_size * run.trainer.args.world_size
    pipeline = images / (clock.times[total_steps] - clock.times[args.warmup_steps])

    model = run.trainer.model
    model.train()
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    batch = random_batch(model, device)
    dtype = torch.bfloat16 if run.trainer.args.bf16 else None
    for step in range(1, total_steps + 1):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_of(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == args.warmup_steps:
            sync_device()
            start = time.perf_counter()
    sync_device()
    ceiling = args.steps * args.batch_size / (time.perf_counter() - start)
    del optimizer, batch

    loader = loader_alone(run.trainer, args.batch_size, args.loader_rounds) if args.loader_rounds else None
    sustained = pipeline if loader is None else min(pipeline, loader)
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return {"pipeline_img_s": pipeline, "loader_alone_img_s": loader, "sustained_img_s": sustained,
            "ceiling_img_s": ceiling, "ratio": sustained / ceiling,
            "host_syncs_in_one_step": clock.syncs if cuda and args.warmup_steps > 1 else None,
            "precision": "bf16" if dtype else "fp32", "device": device_name,
            "workers": run.trainer.args.dataloader_num_workers}


def timing_argv(args, work: Path) -> list[str]:
    """Trainer options shared by the training benchmarks: fixed steps, no evaluation or saving, full batches."""
    return ["--output_dir", str(work / "run"), "--image_size", str(args.image_size),
            "--per_device_train_batch_size", str(args.batch_size), "--max_steps", str(args.warmup_steps + args.steps),
            "--eval_strategy", "no", "--save_strategy", "no", "--logging_strategy", "no", "--disable_tqdm", "True",
            "--dataloader_num_workers", str(args.workers), "--dataloader_drop_last", "True"]


def report_training(args, name: str, dataset: str, config, run, model_name: str, details: str, timing: dict):
    print(f"\n{model_name}, batch {args.batch_size}, {timing['precision']}, {timing['device']}; data {dataset} "
          f"{config or ''} (train split {len(run.sets['train'])} rows per epoch){details}, {timing['workers']} "
          f"DataLoader workers; {args.steps} steps timed after {args.warmup_steps}")
    print(f"  training through {name} (real input pipeline): {timing['pipeline_img_s']:8.1f} img/s")
    if timing["loader_alone_img_s"] is not None:
        print(f"  its input pipeline alone (DataLoader to the device):   {timing['loader_alone_img_s']:8.1f} img/s")
        if timing["loader_alone_img_s"] < timing["pipeline_img_s"]:
            print("  (the timed steps drew on batches the workers had prefetched: the input pipeline alone is the "
                  "sustained rate)")
    print(f"  model-only ceiling (random tensors on the device):   {timing['ceiling_img_s']:8.1f} img/s")
    print(f"  ratio, sustained / ceiling: {timing['ratio']:.3f}")
    if timing["host_syncs_in_one_step"] is not None:
        where = ", ".join(sorted(set(timing["host_syncs_in_one_step"]))) or "none"
        print(f"  host synchronisations in one training step: {len(timing['host_syncs_in_one_step'])} ({where})")
    write_json(args.json, {"benchmark": args.command, "dataset": dataset, "config": config, "model": model_name,
                           "details": details.lstrip(", "),
                           "batch_size": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup_steps,
                           **timing, "machine": machine_info()})


def set_up_run(args, script: str, options: list[str]):
    """The script's own set_up() on --dataset or a replica, with the timing options: (dataset, config, run)."""
    work = Path(args.work or tempfile.mkdtemp(prefix="medsets-train-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset, config = (args.dataset, args.config) if args.dataset else replica_dataset(work, args.replica, args.scale)
    argv = ["--dataset", dataset, "--model_size", args.model_size] + options + timing_argv(args, work)
    argv += ["--config", config] if config and config != "default" else []
    run = importlib.import_module(f"scripts.{script}").set_up(argv)
    if len(run.sets["train"]) < args.batch_size:
        sys.exit(f"the train split has {len(run.sets['train'])} rows, fewer than one batch of {args.batch_size}: "
                 "use a larger --scale or a smaller --batch_size")
    return dataset, config, run


def train_classification(args):
    """finetune_classification.py's training img/s against the model-only ceiling (pipeline_vs_ceiling)."""
    import torch
    dataset, config, run = set_up_run(args, "finetune_classification", ["--patch_size", str(args.patch_size),
                                                                        "--protocol", args.protocol])

    def random_batch(model, device):
        return (torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device),
                torch.randint(model.config.num_labels, (args.batch_size,), device=device))

    def loss_of(model, batch):
        return torch.nn.functional.cross_entropy(model(pixel_values=batch[0]).logits.float(), batch[1])

    timing = pipeline_vs_ceiling(run, args, random_batch, loss_of)
    report_training(args, "finetune_classification", dataset, config, run, run.model_name,
                    f", protocol {run.protocol_name}", timing)


def train_segmentation(args):
    """finetune_segmentation.py's training img/s against the model-only ceiling (pipeline_vs_ceiling); the
    ceiling's loss is SegFormer's own (logits upsampled to the target, cross-entropy), as the script's."""
    import torch
    cache_gb = args.decode_cache_gb
    if cache_gb is None and args.replica == "gzmh-tiles" and not args.dataset:
        cache_gb = 0.0  # as the full dataset would be: real GZMH tiles (~40 GB decoded) are decoded by the workers
    options = [] if cache_gb is None else ["--decode_cache_gb", str(cache_gb)]  # else the script's default
    dataset, config, run = set_up_run(args, "finetune_segmentation", options)

    def random_batch(model, device):
        return (torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device),
                torch.randint(model.config.num_labels, (args.batch_size, args.image_size, args.image_size), device=device))

    def loss_of(model, batch):
        return model(pixel_values=batch[0], labels=batch[1]).loss

    timing = pipeline_vs_ceiling(run, args, random_batch, loss_of)
    decoding = "decoded once (cache)" if run.sets["train"].cached else "decoded by the DataLoader workers"
    report_training(args, "finetune_segmentation", dataset, config, run, run.model_name, f", images {decoding}", timing)
