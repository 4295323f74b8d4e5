"""The demo's fine-tuning steps: each script runs in a process of its own, its output in a log file, and a
one-line bar follows its epochs through the checkpoints Trainer saves (the full runs take minutes: they are
the demo's, not the suite's)."""

import io
import sys

from medsets.demo import epochs_done, run_with_epoch_bar

# Stands in for a fine-tuning script: a checkpoint with Trainer's state file per epoch, then a while scoring.
FAKE_SCRIPT = """
import json, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
for epoch in (1, 2, 3):
    time.sleep(0.2)
    (out / f"checkpoint-{epoch}").mkdir(parents=True)
    (out / f"checkpoint-{epoch}" / "trainer_state.json").write_text(json.dumps({"epoch": float(epoch)}))
    print(f"epoch {epoch} trained", flush=True)
time.sleep(0.7)
sys.exit(int(sys.argv[2]))
"""


def test_the_bar_follows_the_epochs_and_the_output_goes_to_the_log(tmp_path):
    bar, log_path = io.StringIO(), tmp_path / "run.log"
    with open(log_path, "w") as log:
        code = run_with_epoch_bar([sys.executable, "-c", FAKE_SCRIPT, str(tmp_path / "run"), "0"], log,
                                  tmp_path / "run", 3, bar_file=bar, show=True)
    assert code == 0
    assert log_path.read_text().splitlines() == ["epoch 1 trained", "epoch 2 trained", "epoch 3 trained"]
    drawn = bar.getvalue()
    assert "0/3 epochs" in drawn and "3/3 epochs" in drawn and "scoring the best epoch" in drawn
    assert "\n" not in drawn.rstrip("\n")  # one line, redrawn in place


def test_a_failing_script_returns_its_status_and_a_half_written_state_is_skipped(tmp_path):
    with open(tmp_path / "run.log", "w") as log:
        code = run_with_epoch_bar([sys.executable, "-c", FAKE_SCRIPT, str(tmp_path / "run"), "3"], log,
                                  tmp_path / "run", 3, show=False)
    assert code == 3
    (tmp_path / "run" / "checkpoint-4").mkdir()
    (tmp_path / "run" / "checkpoint-4" / "trainer_state.json").write_text('{"epoch": 4')  # being written
    assert epochs_done(tmp_path / "run") == 3.0 and epochs_done(tmp_path / "nothing") == 0.0
