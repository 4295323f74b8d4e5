"""The training benchmarks (python -m benchmarks train-*) run end to end and write every number they print (a few
steps, tiny inputs: these check that the commands a GPU session will run work, not how fast they are)."""

import json

import pytest

from benchmarks.__main__ import main as benchmark_main

TIMING_KEYS = {"pipeline_img_s", "loader_alone_img_s", "sustained_img_s", "ceiling_img_s", "ratio", "precision",
               "device", "workers", "machine"}


@pytest.mark.parametrize("command, options", [
    ("train-classification", ["--replica", "hep2", "--scale", "0.01", "--image_size", "32", "--patch_size", "8",
                              "--protocol", "paper"]),
    ("train-segmentation", ["--replica", "bis5k", "--scale", "0.01", "--image_size", "64"]),
])
def test_training_benchmark_writes_pipeline_loader_and_ceiling(tmp_path, capsys, command, options):
    out = tmp_path / "result.json"
    benchmark_main([command, *options, "--work", str(tmp_path / "work"), "--batch_size", "4", "--steps", "2",
                    "--warmup_steps", "1", "--workers", "1", "--loader_rounds", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert TIMING_KEYS <= set(result) and result["benchmark"] == command
    assert result["sustained_img_s"] == min(result["pipeline_img_s"], result["loader_alone_img_s"])
    assert result["ratio"] == pytest.approx(result["sustained_img_s"] / result["ceiling_img_s"])
    assert all(result[k] > 0 for k in ("pipeline_img_s", "loader_alone_img_s", "ceiling_img_s"))
    printed = capsys.readouterr().out
    assert "input pipeline alone" in printed and "ratio, sustained / ceiling" in printed


def test_intervals_benchmark_prints_each_goal_and_writes_its_numbers(tmp_path, capsys):
    from benchmarks.__main__ import main

    main(["intervals", "--predictions", "300", "--resamples", "200", "--pairs", "4", "--size", "64", "--fields", "10",
          "--trials", "20", "--json", str(tmp_path / "intervals.json")])
    out = capsys.readouterr().out
    assert "(goal < 1 s)" in out and out.count("(goal < 10%)") == 2 and "(goal 92-98%)" in out
    saved = json.loads((tmp_path / "intervals.json").read_text())
    assert 0 <= saved["coverage"]["covered"] <= 1 and saved["segmentation"]["metric_s"] > 0
