import pickle
import zipfile

import pytest

from medsets.source import Source, SourceError, parse_rows


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "tree" / "Wrapper" / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / "00001.png").write_bytes(b"img")
    (root / "train" / "00001_Mask.PNG").write_bytes(b"mask")
    (root / "labels.csv").write_bytes(b"\xef\xbb\xbfid;class\r\n1;Golgi\r\n\r\n")
    (root / ".DS_Store").write_bytes(b"junk")
    return tmp_path / "tree"


def zip_of(folder, target):
    with zipfile.ZipFile(target, "w") as archive:
        for path in folder.rglob("*"):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
        archive.writestr("__MACOSX/Wrapper/._labels.csv", b"resource fork")
    return target


@pytest.mark.parametrize("as_zip", [False, True])
def test_folder_and_zip_read_the_same(layout, tmp_path, as_zip):
    path = zip_of(layout, tmp_path / "dl.zip") if as_zip else layout
    source = Source(path)
    assert source.kind == ("zip" if as_zip else "folder")
    assert source.files == ["Wrapper/data/labels.csv", "Wrapper/data/train/00001.png",
                            "Wrapper/data/train/00001_Mask.PNG"]
    # case-insensitive look-up returns the source's own spelling
    assert source.find("wrapper/DATA/train/00001_mask.png") == "Wrapper/data/train/00001_Mask.PNG"
    assert source.read_bytes(source.find("wrapper/data/train/00001.PNG")) == b"img"
    assert source.read_rows("Wrapper/data/labels.csv") == [["id", "class"], ["1", "Golgi"]]
    assert source.files_in("wrapper/data/TRAIN") == ["Wrapper/data/train/00001.png",
                                                     "Wrapper/data/train/00001_Mask.PNG"]
    # survives pickling (datasets sends builders to worker processes) and still reads
    clone = pickle.loads(pickle.dumps(source))
    assert clone.read_bytes("Wrapper/data/train/00001.png") == b"img"


def test_junk_files_are_not_data(layout, tmp_path):
    source = Source(zip_of(layout, tmp_path / "dl.zip"))
    assert not any("DS_Store" in f or "MACOSX" in f for f in source.files)


def test_missing_empty_and_non_archive_paths(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        Source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no files"):
        Source(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="not a folder and not a .zip"):
        Source(tmp_path / "notes.txt")


@pytest.mark.parametrize("text, rows", [
    ("a,b\n1,x\n", [["a", "b"], ["1", "x"]]),
    ("\ufeffa;b\r\n1;x\r\n\r\n\r\n", [["a", "b"], ["1", "x"]]),
    ("a\tb\n1\tx\n", [["a", "b"], ["1", "x"]]),
    ("00001.bmp 1\n00002.bmp 0\n", [["00001.bmp", "1"], ["00002.bmp", "0"]]),
    ('"name, quoted",label\n"x, y",1\n', [["name, quoted", "label"], ["x, y", "1"]]),
    ("", []),
])
def test_label_files_parse_whatever_the_delimiter(text, rows):
    assert parse_rows(text) == rows


def test_cp1252_label_file_does_not_crash(tmp_path):
    (tmp_path / "l.csv").write_bytes("id,class\n1,Nucléolar\n".encode("cp1252"))
    assert Source(tmp_path).read_rows("l.csv")[1] == ["1", "Nucléolar"]
