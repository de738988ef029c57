"""Resolving --results: a folder or a URI pyarrow opens, credentials never shown, bad ones refused in one sentence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.store.location import check_writable, redact, resolve_location, shown_location
from workloads.errors import UserError


def test_a_path_is_a_local_folder_resolved_where_it_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    location = resolve_location("r")
    assert location.local and location.root == str(tmp_path / "r") and location.shown == str(tmp_path / "r")
    assert location.path("runs/x") == f"{tmp_path}/r/runs/x" and location.relative(f"{tmp_path}/r/runs/x") == "runs/x"
    assert resolve_location(Path("s3:") / "bench").local  # a path, however it is named
    assert resolve_location(f"file://{tmp_path}/r").root == f"{tmp_path}/r"


def test_an_s3_uri_keeps_its_options_and_hides_its_credentials(s3_server):
    uri = s3_server.uri("a/b").replace("s3://", "s3://AKID:SECRET@")
    location = resolve_location(uri)
    assert not location.local and location.fs.type_name == "s3" and location.root == "bench/a/b"
    assert "SECRET" not in location.shown and location.shown == s3_server.uri("a/b")
    assert location.given == uri  # what another process resolves again


@pytest.mark.parametrize("bad, reason", [
    ("foo://x/y", "Unrecognized filesystem type in URI: foo://x/y"),
    ("s3://bench/r?endpoint_override=127.0.0.1:1&bogus=1", "Unexpected query parameter in S3 URI: 'bogus'"),
    ("s3:///r", "Missing bucket name in S3 URI"),
])
def test_a_uri_pyarrow_cannot_open_is_refused_in_one_sentence(bad, reason):
    with pytest.raises(UserError) as caught:
        resolve_location(bad)
    assert str(caught.value) == (f"--results {bad!r} is neither a folder nor a URI pyarrow can open ({reason}); "
                                 "pass a folder or a URI such as s3://bucket/prefix?endpoint_override=HOST:PORT"
                                 "&scheme=http.")


def test_a_uri_without_a_bucket_is_refused():
    with pytest.raises(UserError, match=r"^--results 's3://' names no bucket; pass one, e.g. s3://bucket/prefix"):
        resolve_location("s3://")


@pytest.mark.parametrize("text, shown", [
    ("s3://AKID:SECRET@bench/r?endpoint_override=h:1", "s3://bench/r?endpoint_override=h:1"),
    ("topobench run --results s3://a:b@x/y --workers 2", "topobench run --results s3://x/y --workers 2"),
    ("gs://b/p?access_token=abc&scheme=http", "gs://b/p?access_token=***&scheme=http"),
    ("results/../r", "results/../r"),
])
def test_credentials_are_removed_from_what_is_shown_and_stored(text, shown):
    assert redact(text) == shown


def test_a_path_is_stored_as_given_and_a_uri_without_credentials():
    assert shown_location(Path("results")) == "results"
    assert shown_location("s3://k:s@b/p?scheme=http") == "s3://b/p?scheme=http"


def test_a_missing_bucket_is_refused_before_anything_is_written(s3_server):
    uri = s3_server.uri("r").replace(f"s3://{s3_server.BUCKET}/", "s3://no-such-bucket/")
    with pytest.raises(UserError, match=r"^Results location 's3://no-such-bucket/r\?endpoint_override=.*' cannot be "
                                        r"written \(writing a test object failed: AWS Error NO_SUCH_BUCKET during "
                                        r"PutObject operation: The specified bucket does not exist\); check the bucket"):
        check_writable(uri)


def test_a_writable_bucket_is_checked_without_leaving_a_file(s3_server):
    import pyarrow.fs as pafs

    location = check_writable(s3_server.uri("checked"))
    left = location.fs.get_file_info(pafs.FileSelector(location.root, recursive=True, allow_not_found=True))
    assert [i.path for i in left if i.type != pafs.FileType.Directory] == []  # pyarrow keeps an empty folder marker


def test_aws_endpoint_url_is_honoured(s3_server, monkeypatch):
    from orchestrator.store.reader import Dataset
    from orchestrator.store.writer import RunStore

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_server.endpoint}")
    uri = f"s3://{s3_server.BUCKET}/from-env-{os.getpid()}"
    RunStore(uri, "20261129T085512Z-1a2b3c").write_run({"run_id": "20261129T085512Z-1a2b3c", "status": "complete"})
    assert Dataset(uri).rows("SELECT status FROM runs") == [{"status": "complete"}]
