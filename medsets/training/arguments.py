"""What the fine-tuning scripts settle the same way: Trainer's defaults for them, `--help` that shows the
script's docstring and every default, the learning rate when none is given, and logging as the
transformers examples set it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
import transformers
from transformers import HfArgumentParser, TrainingArguments


def _bf16_available() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class FinetuneTrainingArguments(TrainingArguments):
    """Trainer's arguments with the defaults the fine-tuning scripts share (each script subclasses it for its
    own sizes and output folder): evaluate and keep the best model every epoch, cosine schedule with
    warm-up, DataLoader workers on every core, bf16 where the GPU has it."""
    num_train_epochs: float = field(default=30)
    per_device_train_batch_size: int = field(default=32)
    per_device_eval_batch_size: int = field(default=128)
    lr_scheduler_type: str = field(default="cosine")
    warmup_steps: float = field(default=0.1)
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    logging_strategy: str = field(default="epoch")
    save_total_limit: int | None = field(default=2)
    # The best epoch is reloaded by `checkpoints.load_best`: Trainer's own reload (load_best_model_at_end) loads
    # transformers 5.23's checkpoints without their key renaming and silently keeps the last epoch.
    load_best_model_at_end: bool = field(default=False)
    metric_for_best_model: str | None = field(default="selection_score")
    greater_is_better: bool | None = field(default=True)
    remove_unused_columns: bool = field(default=False)
    # Trainer's default (True) tests every step's loss for NaN on the host: a GPU synchronisation per step,
    # which leaves the GPU idle while the host prepares the next step. Off, a NaN shows in the logged loss.
    logging_nan_inf_filter: bool = field(default=False)
    # Batches are copied to the GPU from pinned memory without waiting: a blocking copy waits for the whole
    # previous step to finish first, and the GPU then idles while the host prepares the next one.
    accelerator_config: dict | str | None = field(default_factory=lambda: {"non_blocking": torch.cuda.is_available()})
    dataloader_num_workers: int = field(default_factory=lambda: min(16, os.cpu_count() or 1))
    dataloader_persistent_workers: bool = field(default=True)
    dataloader_pin_memory: bool = field(default_factory=torch.cuda.is_available)
    bf16: bool = field(default_factory=_bf16_available)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help shows the script's docstring as written, then every option with its default."""


def parse_arguments(types: tuple, argv: list[str] | None, script_logger: logging.Logger,
                    learning_rates: tuple[float, float], description: str) -> tuple:
    """The argument dataclasses (the last one TrainingArguments) from argv, plus what every fine-tuning
    script settles the same way: the learning rate when not given (pretrained, from scratch), no persistent
    workers without workers, and logging as the transformers examples set it."""
    parser = HfArgumentParser(types, description=description, formatter_class=HelpFormatter)
    parsed = parser.parse_args_into_dataclasses(args=argv)
    model_args, training_args = next(a for a in parsed if hasattr(a, "model")), parsed[-1]
    argv = sys.argv[1:] if argv is None else argv
    if training_args.dataloader_num_workers == 0:
        training_args.dataloader_persistent_workers = False
    if not any(a.split("=")[0] == "--learning_rate" for a in argv):
        training_args.learning_rate = learning_rates[0] if model_args.model else learning_rates[1]
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if training_args.should_log and training_args.log_level == "passive":
        transformers.utils.logging.set_verbosity_info()  # as the transformers examples: info unless told otherwise
    script_logger.setLevel(training_args.get_process_log_level())  # --log_level; other ranks: warnings only
    return parsed


CONFIG_OVERRIDES_HELP = ("Settings of a model built from a config to override, as the transformers examples take "
                         "them: scalars, key=value separated by commas (num_hidden_layers=4,hidden_dropout_prob=0).")


def with_overrides(config, overrides: str | None):
    """A config built from scratch with `--config_overrides` applied ("num_hidden_layers=4,hidden_size=96"),
    as the transformers example scripts take it: scalar settings only; a key the config lacks or a value
    of the wrong type is a clear error, not a traceback."""
    if overrides:
        malformed = [part for part in overrides.split(",") if part.count("=") != 1]
        if malformed:
            raise SystemExit(f"--config_overrides {overrides!r}: each setting is key=value, separated by commas; "
                             f"not {', '.join(map(repr, malformed))}")
        try:
            config.update_from_string(overrides)
        except ValueError as error:
            raise SystemExit(f"--config_overrides {overrides!r}: {error}") from None
    return config


def overridden(model_args) -> str:
    """What a model's description adds for `--config_overrides`: the tables then say what was trained."""
    return f"; {model_args.config_overrides}" if model_args.config_overrides else ""
