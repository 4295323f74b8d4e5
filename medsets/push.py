"""`medsets push`: publish a built folder as a Hub dataset repository.

Private unless asked otherwise: the terms of most medical datasets forbid open redistribution, and the
card says so. The upload is resumable: files already on the Hub with the same content are skipped, the
rest go up in several commits (each atomic on the Hub), and README.md goes last so that the card only
appears once the data it describes is complete. The token comes from the usual places (HF_TOKEN, the
stored login) and is never printed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .checks import BuildError
from .export import is_medsets_folder

FILES_PER_COMMIT = 50
BYTES_PER_COMMIT = 2 * 1024**3


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def already_there(path: Path, remote) -> bool:
    if remote is None or remote.size != path.stat().st_size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == file_sha256(path)
    return remote.blob_id == git_blob_sha1(path.read_bytes())


def batches(files: list[Path]) -> list[list[Path]]:
    out, current, size = [], [], 0
    for path in files:
        if current and (len(current) >= FILES_PER_COMMIT or size + path.stat().st_size > BYTES_PER_COMMIT):
            out.append(current)
            current, size = [], 0
        current.append(path)
        size += path.stat().st_size
    return out + ([current] if current else [])


def push_folder(folder: Path, repo_id: str, public: bool = False) -> str:
    """Create the dataset repo if needed and upload what is missing; returns the repo URL."""
    from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
    # HTTPError: the base error of whichever HTTP client huggingface_hub uses (httpx in 1.x, httpx2 in 2.x).
    from huggingface_hub.errors import HfHubHTTPError, HTTPError, OfflineModeIsEnabled

    folder = Path(folder).resolve()
    if not is_medsets_folder(folder):
        raise BuildError(f"{folder} is not a folder built by medsets (no README.md and reports/).",
                         hint="Build one first: medsets build NAME --source RAW --out FOLDER")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("it needs exactly one '/'")
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise BuildError(f"--repo {repo_id!r} is not a repository id: {str(err).splitlines()[0]}",
                         hint="Give it as NAMESPACE/NAME (your user or organisation name first): letters, digits, "
                              "'-', '_' and '.', at most 96 characters.") from None
    if constants.HF_HUB_OFFLINE:
        raise BuildError("HF_HUB_OFFLINE is set: nothing can be pushed.",
                         hint="Unset HF_HUB_OFFLINE (and connect to the network), then run medsets push again.")
    if get_token() is None:
        raise BuildError("No Hugging Face token found.",
                         hint="Set HF_TOKEN, or log in once with `hf auth login`; then run medsets push again.")
    api = HfApi()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=not public, exist_ok=True)
        remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)
                  if hasattr(entry, "blob_id")}
        missing = [p for p in files if not already_there(p, remote.get(p.relative_to(folder).as_posix()))]
        readme = [p for p in missing if p.name == "README.md" and p.parent == folder]
        data = [p for p in missing if p not in readme]
        skipped = len(files) - len(missing)
        print(f"{repo_id}: {len(missing)} of {len(files)} files to upload"
              + (f" ({skipped} already there, skipped)" if skipped else "")
              + f"; repository is {'public' if public else 'private'}")
        parts = batches(data) + ([readme] if readme else [])
        for number, part in enumerate(parts, start=1):
            api.create_commit(
                repo_id, repo_type="dataset",
                operations=[CommitOperationAdd(p.relative_to(folder).as_posix(), str(p)) for p in part],
                commit_message=f"medsets push: {', '.join(sorted({p.relative_to(folder).parts[0] for p in part}))}"
                               f" ({number}/{len(parts)})")
            print(f"  commit {number}/{len(parts)}: {len(part)} files")
    except OfflineModeIsEnabled:
        raise BuildError("HF_HUB_OFFLINE is set: nothing can be pushed.",
                         hint="Unset HF_HUB_OFFLINE (and connect to the network), then run medsets push again.")
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", "?")
        raise BuildError(f"The Hub refused the push (HTTP {status}): {str(err).splitlines()[0]}",
                         hint="Check that your token has write access to the namespace; a re-run resumes "
                              "where this one stopped.") from None
    except (HTTPError, OSError) as err:  # connection refused, DNS failure, timeouts
        raise BuildError(f"Could not reach the Hub: {err}",
                         hint="Check the network; a re-run resumes where this one stopped.") from None
    except ValueError as err:  # an answer that is not the Hub's JSON: a captive portal, a proxy, a wrong endpoint
        raise BuildError(f"The server at {constants.ENDPOINT} answered with something that is not the Hub's "
                         f"(not JSON: {type(err).__name__}); nothing more was sent.",
                         hint="Check HF_ENDPOINT and any proxy or network login page; a re-run resumes where this "
                              "one stopped.") from None
    return str(url)
