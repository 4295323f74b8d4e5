"""`medsets push`, against an intercepted Hub: the requests are asserted, nothing leaves the machine."""

import base64
import hashlib
import json
import shutil
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import constants
from huggingface_hub.utils import _http

from medsets import HEp2
from medsets.cli import main
from medsets.export import build

TOKEN = "hf_not_a_real_token_0123456789"


class FakeHub:
    """Answers the few Hub endpoints a push uses and records what was sent. `existing`: the repository is
    already there, with this visibility ("private" or "public"); `remote_files`: {path: bytes} it holds."""

    def __init__(self, remote_files=None, refuse_with=None, existing=None, card_refused=None):
        self.remote_files = remote_files or {}
        self.refuse_with, self.existing, self.card_refused = refuse_with, existing, card_refused
        self.created, self.commits, self.auth, self.validated = [], [], set(), []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path == "/api/repos/create" or path.startswith("/api/datasets/"):  # the repository's own endpoints
            self.auth.add(request.headers.get("authorization"))
        if path == "/api/validate-yaml":
            self.validated.append(json.loads(request.content))
            if self.card_refused:
                return httpx2.Response(400, text=self.card_refused)
            return httpx2.Response(200, json={})
        if path == "/api/datasets/org/hep2" and request.method == "GET":
            if self.refuse_with:
                return httpx2.Response(self.refuse_with, json={"error": "Invalid credentials"})
            if self.existing is None:
                return httpx2.Response(404, json={"error": "Repository not found"},
                                       headers={"X-Error-Code": "RepoNotFound"})
            return httpx2.Response(200, json={"id": "org/hep2", "_id": "1", "private": self.existing == "private",
                                              "sha": "0" * 40, "tags": [], "siblings": []})
        if path == "/api/repos/create":
            if self.refuse_with:
                return httpx2.Response(self.refuse_with, json={"error": "Invalid credentials"})
            self.created.append(json.loads(request.content))
            return httpx2.Response(200, json={"url": "https://huggingface.co/datasets/org/hep2"})
        if "/preupload/main" in path:  # everything inline, so every byte is visible in the commit request
            files = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 **({"oid": git_blob_sha1(self.remote_files[f["path"]])} if f["path"] in self.remote_files else {})}
                for f in files]})
        if "/commit/main" in path:
            lines = [json.loads(line) for line in request.content.decode().splitlines()]
            self.commits.append({line["value"]["path"]: base64.b64decode(line["value"]["content"])
                                 for line in lines if line["key"] == "file"})
            return httpx2.Response(200, json={"commitUrl": "https://huggingface.co/datasets/org/hep2/commit/1",
                                              "commitOid": "0" * 40})
        return httpx2.Response(404, json={"error": "not part of a push"})


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)

    def install(fake: FakeHub) -> FakeHub:
        _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake)))
        return fake

    yield install
    _http.set_client_factory(_http.default_client_factory)


@pytest.fixture(scope="module")
def built_once(replicas, tmp_path_factory):
    out, _ = build(HEp2, replicas("processed"), "icpr2014", tmp_path_factory.mktemp("push") / "hep2")
    build(HEp2, replicas("icpr2012"), "icpr2012", out)
    return out


@pytest.fixture
def folder(built_once, tmp_path):
    """A copy of one build per test: some tests change the folder (a hidden file, a broken card)."""
    return Path(shutil.copytree(built_once, tmp_path / "hep2"))


def local_files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def pushed_card(folder: Path) -> bytes:
    return (folder / "README.md").read_bytes().replace(b'load_dataset("hep2", ', b'load_dataset("org/hep2", ')


def test_push_creates_a_private_dataset_repo_and_uploads_every_file(hub, folder, capsys):
    fake = hub(FakeHub())
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 0
    assert fake.created == [{"name": "hep2", "organization": "org", "type": "dataset", "visibility": "private"}]
    uploaded = {path: data for commit in fake.commits for path, data in commit.items()}
    assert uploaded == {**local_files(folder), "README.md": pushed_card(folder)}
    assert list(fake.commits[-1]) == ["README.md"]  # the card appears once its data is complete
    assert b'load_dataset("org/hep2", "icpr2014")' in uploaded["README.md"]  # the snippet loads the repository
    assert fake.validated and fake.validated[0]["repoType"] == "dataset"  # the Hub's check, before the data
    assert fake.auth == {f"Bearer {TOKEN}"}
    out, err = capsys.readouterr()
    assert TOKEN not in out + err and "private" in out


def test_public_on_request(hub, folder):
    fake = hub(FakeHub())
    assert main(["push", str(folder), "--repo", "org/hep2", "--public"]) == 0
    assert fake.created[0]["visibility"] == "public"


def test_an_existing_public_repository_never_receives_a_private_push(hub, folder, capsys):
    fake = hub(FakeHub(existing="public"))
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 2
    err = capsys.readouterr().err
    assert "already exists and is PUBLIC" in err and "nothing was sent" in err and "--public" in err
    assert not fake.commits and not fake.created
    fake = hub(FakeHub(existing="public"))  # asked for, it is pushed
    assert main(["push", str(folder), "--repo", "org/hep2", "--public"]) == 0
    assert fake.commits and not fake.created


def test_an_existing_private_repository_is_not_taken_for_a_public_one(hub, folder, capsys):
    fake = hub(FakeHub(existing="private"))
    assert main(["push", str(folder), "--repo", "org/hep2", "--public"]) == 2
    assert "already exists and is private" in capsys.readouterr().err and not fake.commits
    fake = hub(FakeHub(existing="private"))
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 0
    assert fake.commits and not fake.created


def test_hidden_files_and_folders_are_never_uploaded(hub, folder):
    (folder / ".cache").mkdir()
    (folder / ".cache" / "token").write_text("secret")
    (folder / "data" / ".notes.txt").write_text("mine")
    fake = hub(FakeHub())
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 0
    uploaded = {path for commit in fake.commits for path in commit}
    assert not [path for path in uploaded if any(part.startswith(".") for part in path.split("/"))]
    assert "data/icpr2014/train-00000-of-00001.parquet" in uploaded


def test_a_card_the_hub_would_refuse_stops_the_push_before_any_data(hub, folder, capsys):
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("license: unknown", "license: not-a-licence"))
    fake = hub(FakeHub())
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 2
    err = capsys.readouterr().err
    assert "would not pass the Hub's checks" in err and "'not-a-licence' is not a Hub licence" in err
    assert not fake.commits and not fake.created and not fake.validated  # found offline: nothing was sent
    readme.write_text(readme.read_text().replace("license: not-a-licence", "license: unknown"))
    fake = hub(FakeHub(card_refused="Invalid metadata in README.md.\n- \"configs\" is invalid"))
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 2
    assert "The Hub rejects the card" in capsys.readouterr().err
    assert not fake.commits and not fake.created


def test_a_second_push_uploads_only_what_is_missing(hub, folder):
    files = local_files(folder)
    already = {path: data for path, data in files.items() if path.startswith("data/icpr2014/")}
    fake = hub(FakeHub(remote_files=already, existing="private"))
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 0
    uploaded = {path for commit in fake.commits for path in commit}
    assert uploaded == set(files) - set(already)


def test_unauthorised(hub, folder, capsys):
    hub(FakeHub(refuse_with=401))
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 2
    err = capsys.readouterr().err
    assert "refused the push (HTTP 401)" in err and "write access" in err and TOKEN not in err


def test_no_token(hub, folder, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 2
    assert "No Hugging Face token found" in capsys.readouterr().err


def test_offline(hub, folder, capsys, monkeypatch):
    hub(FakeHub())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(folder), "--repo", "org/hep2"]) == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_only_medsets_folders_are_pushed(hub, tmp_path, capsys):
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "x.txt").write_text("x")
    assert main(["push", str(tmp_path / "random"), "--repo", "org/x"]) == 2
    assert "not a folder built by medsets" in capsys.readouterr().err


@pytest.mark.parametrize("repo", ["a/b/c", "no-namespace", "org/bad name", "org/" + "x" * 100, "org/-start"])
def test_an_invalid_repo_id_is_a_clear_error(folder, repo, capsys):
    assert main(["push", str(folder), "--repo", repo]) == 2
    err = capsys.readouterr().err
    assert "is not a repository id" in err and "Traceback" not in err

