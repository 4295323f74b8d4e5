"""Bad input: exit status 2, one message listing every problem with file names, nothing lost."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_dataset
from PIL import Image

from medsets import synthetic
from medsets.cli import main
from medsets.export import recover_interrupted, terminate_as_exception


def cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def organisers(tmp_path):
    """A fresh, writable organisers' replica (cells + masks) to damage."""
    return synthetic.write_hep2_icpr2014(tmp_path / "raw", "organisers", scale=0.005)


def cell(source, number, mask=False):
    return source / "ICIP2013_training_1.0" / "train" / f"{number:05d}{'_Mask' if mask else ''}.png"


def damage_missing_image(source):
    cell(source, 3).unlink()
    cell(source, 3, mask=True).unlink()
    return "missing image", "gt_training.csv: line 4 lists cell 3"


def damage_unlabelled_image(source):
    Image.new("L", (70, 70)).save(cell(source, 9999))
    Image.new("L", (70, 70)).save(cell(source, 9999, mask=True))
    return "unlabelled image", "train/09999.png: no row for cell 9999"


def damage_unknown_label(source):
    gt = source / "ICIP2013_training_1.0" / "gt_training.csv"
    gt.write_bytes(gt.read_bytes().replace(b"\r\n2,Homogeneous", b"\r\n2,Homogenous"))
    return "unknown label", "line 3: 'Homogenous' for cell 2"


def damage_truncated_png(source):
    path = cell(source, 5)
    path.write_bytes(path.read_bytes()[:120])
    return "unreadable image", "train/00005.png"


def damage_mask_size(source):
    Image.new("L", (10, 12)).save(cell(source, 7, mask=True))
    return "mask size", "train/00007_Mask.png: 10x12, its image is"


DAMAGES = [damage_missing_image, damage_unlabelled_image, damage_unknown_label, damage_truncated_png,
           damage_mask_size]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__[7:])
def test_each_bad_input_exits_2_and_names_the_file(organisers, tmp_path, capsys, damage):
    kind, where = damage(organisers)
    assert cli("build", "hep2", "--source", organisers, "--out", tmp_path / "hep2") == 2
    err = capsys.readouterr().err
    assert f"{kind} (1)" in err and where in err
    assert "--skip-bad" in err  # says what to do
    assert not (tmp_path / "hep2").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]  # no temporary sibling left behind


def test_every_problem_is_listed_in_one_message(organisers, tmp_path, capsys):
    expected = [damage(organisers) for damage in DAMAGES]
    assert cli("build", "hep2", "--source", organisers, "--out", tmp_path / "hep2") == 2
    err = capsys.readouterr().err
    assert "5 problems" in err
    for kind, where in expected:
        assert kind in err and where in err


def test_skip_bad_builds_without_the_bad_rows_and_records_them(organisers, tmp_path, capsys):
    expected = [damage(organisers) for damage in DAMAGES]
    assert cli("build", "hep2", "--source", organisers, "--out", tmp_path / "hep2", "--skip-bad") == 0
    report = (tmp_path / "hep2" / "reports" / "icpr2014.txt").read_text()
    card = (tmp_path / "hep2" / "README.md").read_text()
    for kind, where in expected:
        assert kind in report and kind in card
    rows = load_dataset(str(tmp_path / "hep2"), cache_dir=str(tmp_path / "cache"))["train"]
    # of the labelled cells, the missing, bad-label, truncated and bad-mask ones are out (and the orphan)
    gt = (organisers / "ICIP2013_training_1.0" / "gt_training.csv").read_text(encoding="utf-8-sig")
    labelled = sum(1 for line in gt.splitlines() if line[:1].isdigit())
    assert len(rows) == labelled - 4
    assert 5 not in rows["image_id"] and 9999 not in rows["image_id"]


def test_long_problem_lists_are_capped_per_kind(organisers, tmp_path, capsys):
    for path in (organisers / "ICIP2013_training_1.0" / "train").glob("*_Mask.png"):
        Image.new("L", (5, 5)).save(path)
    assert cli("build", "hep2", "--source", organisers, "--out", tmp_path / "hep2") == 2
    err = capsys.readouterr().err
    total = len(list((organisers / "ICIP2013_training_1.0" / "train").glob("*_Mask.png")))
    assert f"mask size ({total})" in err and f"... and {total - 8} more" in err


def test_path_that_does_not_exist_and_empty_folder(tmp_path, capsys):
    assert cli("build", "hep2", "--source", tmp_path / "nope") == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli("build", "hep2", "--source", tmp_path / "empty") == 2
    assert "holds no files" in capsys.readouterr().err


def test_folder_of_another_dataset(tmp_path, capsys):
    other = tmp_path / "BIS5k" / "formal_train" / "images"
    other.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(other / "bis_he_id000000.png")
    assert cli("build", "hep2", "--source", tmp_path / "BIS5k", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "does not hold a known HEp-2 ICPR 2014 layout" in err
    assert "Looked for:" in err and "formal_train/images/: 1 files (1 .png)" in err


def test_the_other_hep2_config_is_suggested(tmp_path, capsys):
    contest = synthetic.write_hep2_icpr2012(tmp_path / "raw", scale=0.02, as_zip=True)
    assert cli("build", "hep2", "--source", contest, "--out", tmp_path / "out") == 2
    assert "build it with --config icpr2012" in capsys.readouterr().err
    card = synthetic.write_hep2_icpr2014(tmp_path / "raw14", "card", scale=0.005)
    assert cli("build", "hep2", "--config", "icpr2012", "--source", card, "--out", tmp_path / "out") == 2
    assert "build it with --config icpr2014" in capsys.readouterr().err


def test_existing_output_needs_overwrite_and_survives_a_failed_rebuild(organisers, tmp_path, capsys, digest):
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", organisers, "--out", out) == 0
    before = digest(out)
    assert cli("build", "hep2", "--source", organisers, "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    damage_truncated_png(organisers)
    assert cli("build", "hep2", "--source", organisers, "--out", out, "--overwrite") == 2
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hep2", "raw"]


def test_a_folder_not_built_by_medsets_is_never_replaced(organisers, tmp_path, capsys):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    assert cli("build", "hep2", "--source", organisers, "--out", precious, "--overwrite") == 2
    assert "not a folder built by medsets" in capsys.readouterr().err
    assert (precious / "chapter1.tex").read_text() == "years of work"


def start_build(source, out):
    return subprocess.Popen([sys.executable, "-m", "medsets", "build", "hep2", "--source", str(source),
                             "--out", str(out), "--overwrite", "--num-proc", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_work_folder(parent: Path, name: str, process) -> bool:
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        # datasets writes into 'prepared.incomplete' while generating and renames it when done
        if any(parent.glob(f".{name}.tmp-*/prepared.incomplete")):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_interrupted_build_leaves_the_old_output_untouched(tmp_path, signum, digest, replicas):
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", replicas("processed"), "--out", out) == 0
    before = digest(out)
    process = start_build(replicas("processed", scale=0.25), out)
    assert wait_for_work_folder(tmp_path, "hep2", process), "the build finished before it could be interrupted"
    os.kill(process.pid, signum)
    assert process.wait(timeout=60) != 0  # it was stopped mid-way, not finished
    assert digest(out) == before
    leftovers = list(tmp_path.glob(".hep2.*"))
    if signum == signal.SIGKILL:  # nothing can clean up after SIGKILL; the next build does
        recover_interrupted(out)
        leftovers = list(tmp_path.glob(".hep2.*"))
    assert leftovers == []


def test_a_cell_listed_twice_in_the_label_file(organisers, tmp_path, capsys):
    gt = organisers / "ICIP2013_training_1.0" / "gt_training.csv"
    gt.write_bytes(gt.read_bytes().rstrip(b"\r\n") + b"\r\n4,Golgi\r\n")
    assert cli("build", "hep2", "--source", organisers, "--out", tmp_path / "hep2") == 2
    err = capsys.readouterr().err
    assert "duplicate id (1)" in err and "id 4 already on line 5" in err


def _sigterm_and_wait(pid: int, seconds: float = 10.0) -> int:
    time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the forked child ignored SIGTERM for {seconds} s")


def test_forked_workers_die_on_sigterm_instead_of_raising():
    """datasets' pool stops its forked workers with SIGTERM; with the build's SIGTERM handler inherited
    and raising there, a worker could stay blocked on the pool's queue lock and hang the build (seen in 2
    of 8 two-process gzmh builds before the fix). A forked child gets the default action back."""
    with terminate_as_exception():
        pid = os.fork()
        if pid == 0:  # the child: killed by the signal, or exits 1 if a handler raised instead
            try:
                time.sleep(30)
            finally:
                os._exit(1)
        status = _sigterm_and_wait(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_forked_workers_die_on_sigterm_delivered_to_another_thread():
    """The hang came back in a worker with a second thread (Arrow's pool): the kernel may hand SIGTERM to
    that thread, and a Python handler waits for the main thread, which sat blocked on the queue lock. Here
    the child's main thread blocks SIGTERM, so the kernel must deliver it to the other thread."""
    import threading

    with terminate_as_exception():
        pid = os.fork()
        if pid == 0:
            try:
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                time.sleep(30)
            finally:
                os._exit(1)
        status = _sigterm_and_wait(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
