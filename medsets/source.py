"""Read-only access to a raw download: its folder, a wrapper folder above it, or the .zip itself.

Nothing is ever extracted to disk. Every path handed out is POSIX, relative to the source root, in the
spelling the source uses; look-ups are case-insensitive because the same archive circulates with
`_Mask.png` and `_mask.PNG`. A name that is not valid UTF-8 (bytes from another system's encoding) is
handed out with those bytes written as escapes (`\\xe9`), so it can be stored, reported and printed;
reading it still opens the file by its real name. A file that cannot be read (a zip member with a bad
checksum, an I/O error) raises `UnreadableFile`: a problem of that file, like a truncated image.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

from .errors import MedsetsError

# Files that archivers and desktops add; they are never data.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
_JUNK_DIRS = {"__macosx"}

LABEL_DELIMITERS = (",", ";", "\t")


def check_exists(path, given=None):
    """The raw download must be there: said first, before anything about the output."""
    if not os.path.lexists(Path(path).expanduser()):  # (a link that cannot be followed is Source's to explain)
        raise SourceError(f"{given or path}: no such file or folder. Point data_dir= at the extracted folder, "
                          "a folder above it, or the downloaded .zip.")


class SourceError(MedsetsError):
    """The path given as a source cannot be read as one (missing, not a folder or zip, empty)."""


class UnreadableFile(SourceError):
    """One file of the source cannot be read; the message names it and says why."""


def printable(name: str) -> str:
    """A file name as valid UTF-8: bytes that are not (kept by os.fsdecode as surrogates) become escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_junk(rel_path: str) -> bool:
    parts = rel_path.split("/")
    name = parts[-1].lower()
    return (
        name in _JUNK_NAMES
        or name.startswith("._")
        or any(p.lower() in _JUNK_DIRS for p in parts[:-1])
    )


def suffix(rel_path: str) -> str:
    """Lower-cased extension with the dot ('.png'), so callers compare without caring about case."""
    return PurePosixPath(rel_path).suffix.lower()


def stem(rel_path: str) -> str:
    return PurePosixPath(rel_path).stem


def parent(rel_path: str) -> str:
    """Folder of a relative path, '' at the root."""
    head, _, _ = rel_path.rpartition("/")
    return head


class Source:
    """A raw download, as a folder or a zip, read in place.

    Picklable (the zip handle is reopened lazily in each process), so builders can hand it to
    `datasets` worker processes.
    """

    def __init__(self, path: str | os.PathLike):
        try:
            self.path = Path(path).expanduser().resolve()
        except (OSError, RuntimeError) as err:  # a loop of symbolic links (RuntimeError before Python 3.13)
            raise SourceError(f"{path}: cannot be followed to a file or folder ({err}). Point data_dir= at the "
                              "extracted folder itself.") from None
        check_exists(self.path, path)
        self._real_names: dict[str, str] = {}  # printable name -> the name on disk, where they differ
        if self.path.is_dir():
            self.kind = "folder"
            files = []
            for p in self.path.rglob("*"):
                if p.is_file():
                    real = p.relative_to(self.path).as_posix()
                    files.append(printable(real))
                    if files[-1] != real:
                        self._real_names[files[-1]] = real
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
            with zipfile.ZipFile(self.path) as archive:
                files = [info.filename for info in archive.infolist() if not info.is_dir()]
        else:
            raise SourceError(f"{path}: not a folder and not a .zip archive. Point data_dir= at the "
                              "extracted folder, a folder above it, or the downloaded .zip.")
        self.files: list[str] = sorted(f for f in files if not is_junk(f))
        if not self.files:
            raise SourceError(f"{path}: {'folder' if self.kind == 'folder' else 'archive'} holds no files. "
                              "Is the download complete?")
        self._by_lower = {f.lower(): f for f in self.files}
        self._zip: zipfile.ZipFile | None = None

    # -- pickling: a ZipFile handle cannot cross process boundaries ---------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_zip"] = None
        return state

    def __repr__(self):
        return f"Source({str(self.path)!r}, {self.kind}, {len(self.files)} files)"

    # -- look-up ------------------------------------------------------------------------------------
    def find(self, rel_path: str) -> str | None:
        """The source's own spelling of `rel_path`, matched case-insensitively, or None."""
        return self._by_lower.get(rel_path.strip("/").lower())

    def files_in(self, folder: str, recursive: bool = False) -> list[str]:
        """Files directly in `folder` (or anywhere below it), matched case-insensitively."""
        prefix = folder.strip("/").lower()
        prefix = prefix + "/" if prefix else ""
        out = []
        for f in self.files:
            low = f.lower()
            if low.startswith(prefix) and (recursive or "/" not in low[len(prefix):]):
                out.append(f)
        return out

    def folders(self) -> dict[str, list[str]]:
        """Every folder holding files directly, with those files ('' is the root)."""
        by_folder: dict[str, list[str]] = defaultdict(list)
        for f in self.files:
            by_folder[parent(f)].append(f)
        return dict(by_folder)

    # -- reading ------------------------------------------------------------------------------------
    def read_bytes(self, rel_path: str) -> bytes:
        try:
            if self.kind == "folder":
                return (self.path / self._real_names.get(rel_path, rel_path)).read_bytes()
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            return self._zip.read(rel_path)
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as err:
            # A damaged member fails its checksum (BadZipFile) or inflate (zlib.error); an encrypted one is a
            # RuntimeError, an unsupported compression a NotImplementedError; a folder's file an OSError.
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err) or type(err).__name__
            raise UnreadableFile(f"{rel_path}: cannot be read: {reason}") from None

    def read_text(self, rel_path: str) -> str:
        return decode_text(self.read_bytes(rel_path))

    def read_rows(self, rel_path: str) -> list[list[str]]:
        """Rows of a CSV/TXT label file: BOM, CRLF, blank lines, `,` `;` or tab, or whitespace."""
        return parse_rows(self.read_text(rel_path))

    # -- describing, for error messages -------------------------------------------------------------
    def summary(self, max_folders: int = 12) -> list[str]:
        """One line per folder that holds files: its name, file count and the extensions seen."""
        lines = []
        folders = self.folders()
        for folder in sorted(folders, key=lambda d: (d.count("/"), d))[:max_folders]:
            exts = Counter(suffix(f) or "(no extension)" for f in folders[folder])
            kinds = ", ".join(f"{n} {e}" for e, n in exts.most_common(4))
            lines.append(f"{folder or '.'}/: {len(folders[folder])} files ({kinds})")
        if len(folders) > max_folders:
            lines.append(f"... and {len(folders) - max_folders} more folders")
        return lines


def decode_text(raw: bytes) -> str:
    """A label or box file's text: UTF-8 (with or without BOM), else latin-1."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Label files saved by Excel on Windows are cp1252; latin-1 never fails and keeps ASCII ids.
        return raw.decode("latin-1")


def sniff_delimiter(header: str) -> str | None:
    """The delimiter of a CSV/TXT file, from its first line: `,` `;` or tab, whichever it holds most; None
    when it holds none (columns separated by whitespace)."""
    delimiter = max(LABEL_DELIMITERS, key=header.count)
    return delimiter if header.count(delimiter) else None


def parse_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        return []
    delimiter = sniff_delimiter(lines[0])
    if delimiter is None:
        return [line.split() for line in lines]
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]
