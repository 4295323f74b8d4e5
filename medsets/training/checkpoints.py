"""The best epoch of a Trainer run, reloaded and saved with its image processor beside it."""

from __future__ import annotations

import logging

from transformers import Trainer

logger = logging.getLogger(__name__)


def load_best(trainer: Trainer):
    """The best epoch's weights into the trained model, through from_pretrained (which maps the saved names)."""
    best = trainer.state.best_model_checkpoint
    if best:
        weights = type(trainer.model).from_pretrained(best).state_dict()
        trainer.model.load_state_dict(weights)  # strict: a renamed key fails loudly here
        logger.info("best epoch reloaded from %s (%s %.4f)", best, trainer.args.metric_for_best_model,
                    trainer.state.best_metric)


def train_and_save_best(trainer: Trainer, processor):
    """Train (resuming when asked), reload the best epoch, and save it with its processor beside it."""
    trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    load_best(trainer)
    trainer.save_model()
    if trainer.is_world_process_zero():
        processor.save_pretrained(trainer.args.output_dir)
