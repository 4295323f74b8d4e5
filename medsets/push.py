"""`medsets push`: publish a built folder as a Hub dataset repository.

Private unless asked otherwise: the terms of most medical datasets forbid open redistribution, and the
card says so. An existing repository keeps the visibility it has (the Hub does not change it on an
upload), so one whose visibility differs from what was asked is refused before anything is sent: a
private push never lands in a public repository.

The card is checked before any data moves: offline against the Hub's lists and the folder's files
(`hub_card`), then by the Hub's own validation. The data go up through `HfApi.upload_folder`, which
skips files the Hub already has, commits large folders in parts and resumes an interrupted upload when
run again; hidden files and folders (a `.cache/`, our own `.*.medsets-problems.tsv`) never go. The card
goes last, so that it appears once the data it describes is complete, with its usage snippet naming the
repository. The token comes from the usual places (HF_TOKEN, the stored login) and is never printed.
"""

from __future__ import annotations

import re
from pathlib import Path

from .checks import BuildError, Problem
from .export import is_medsets_folder

HIDDEN = [".*", "*/.*"]  # upload_folder's patterns match the path relative to the folder; '*' spans '/'


def card_for_repo(text: str, repo_id: str) -> str:
    """The card as pushed: its usage snippets load the repository, not a local folder of the dataset's name."""
    return re.sub(r'^(ds = load_dataset\()"[^"]*"', lambda m: f'{m[1]}"{repo_id}"', text, flags=re.M)


def push_folder(folder: Path, repo_id: str, public: bool = False) -> str:
    """Create the dataset repo if needed and upload what is missing; returns the repo URL."""
    from huggingface_hub import DatasetCard, HfApi, constants, get_token
    # HTTPError: the base error of whichever HTTP client huggingface_hub uses (httpx in 1.x, httpx2 in 2.x).
    from huggingface_hub.errors import HfHubHTTPError, HTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    from .hub_card import card_problems

    folder = Path(folder).resolve()
    if not is_medsets_folder(folder):
        raise BuildError(f"{folder} is not a folder built by medsets (no README.md and reports/).",
                         hint="Build one first: medsets build NAME --source RAW --out FOLDER")
    check_repo_id(repo_id)
    if constants.HF_HUB_OFFLINE:
        raise BuildError("HF_HUB_OFFLINE is set: nothing can be pushed.",
                         hint="Unset HF_HUB_OFFLINE (and connect to the network), then run medsets push again.")
    if get_token() is None:
        raise BuildError("No Hugging Face token found.",
                         hint="Set HF_TOKEN, or log in once with `hf auth login`; then run medsets push again.")
    card = card_for_repo((folder / "README.md").read_text(encoding="utf-8"), repo_id)
    problems = card_problems(folder, card)
    if problems:
        raise BuildError(f"{folder / 'README.md'}: the card would not pass the Hub's checks; nothing was sent:",
                         [Problem("card", "README.md", problem) for problem in problems], hint="Rebuild the folder with this medsets (`medsets build ... --overwrite`), "
                                        "or fix the card's YAML by hand.")
    files = [p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                      for part in p.relative_to(folder).parts)]
    api = HfApi()
    wanted = "public" if public else "private"
    try:
        try:
            DatasetCard(card).validate(repo_type="dataset")
        except ValueError as err:
            raise BuildError(f"The Hub rejects the card of {folder}: {str(err).strip()[:500]}; nothing was sent.",
                             hint="Fix the card's YAML (README.md) and push again.") from None
        try:
            existing = api.repo_info(repo_id, repo_type="dataset")
        except RepositoryNotFoundError:
            existing = None
        if existing is not None and bool(existing.private) == public:
            has = "private" if existing.private else "PUBLIC"
            raise BuildError(
                f"{repo_id} already exists and is {has}, but this push asked for a {wanted} repository; "
                "nothing was sent (an upload keeps a repository's visibility).",
                hint=("Make it private in the repository's settings on the Hub, or pass --public if the "
                      "dataset's terms allow open redistribution." if not existing.private else
                      "Make it public in the repository's settings on the Hub first, or push without --public "
                      "to keep it private."))
        url = (f"{constants.ENDPOINT}/datasets/{repo_id}" if existing is not None
               else str(api.create_repo(repo_id, repo_type="dataset", private=not public)))
        print(f"{repo_id}: {len(files)} files ({'existing' if existing is not None else 'new'} {wanted} "
              "repository; files the Hub already has unchanged are skipped); the card goes last")
        api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder,
                          ignore_patterns=HIDDEN + ["README.md"], commit_message="medsets push: data")
        api.upload_file(path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id,
                        repo_type="dataset", commit_message="medsets push: the card")
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
    return url


def check_repo_id(repo_id: str):
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
