"""Where a results dataset lives: the one place a ``--results`` value becomes ``(filesystem, path)``.

A local folder (any path) or a URI that ``pyarrow.fs.FileSystem.from_uri`` opens: ``s3://bucket/prefix``
(``?endpoint_override=HOST:PORT&scheme=http`` for MinIO or moto; ``AWS_ENDPOINT_URL`` is honoured
too), ``gs://``, ``file://``. Every read and write of the store takes the resulting ``Location``,
so folders and buckets share one code path. Credentials come from the usual AWS variables and
files; any put in the URI itself are never shown or stored (``redact``).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from workloads.errors import UserError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s?#]*@")
_SECRET_PARAM = re.compile(r"([?&](?:access_key|secret_key|session_token|access_token|token|password|"
                           r"credentials?|signature|sig)=)[^&#\s]*", re.IGNORECASE)
EXAMPLE = "s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http"


def is_uri(text: str) -> bool:
    """Return whether ``text`` is a URI (``scheme://...``) rather than a local path."""
    return bool(_URI.match(text))


def redact(text: str) -> str:
    """Return ``text`` with every URI's credentials (``user:secret@``, secret query values) removed."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1", text))


def shown_location(value: str | os.PathLike) -> str:
    """Return a ``--results`` value as runs store it, without resolving it: a path as is, a URI without credentials."""
    text = os.fspath(value)
    return redact(text) if is_uri(text) else str(Path(text))


@dataclass(frozen=True, slots=True)
class Location:
    """A results dataset's filesystem and root path in it.

    Attributes:
        fs: the pyarrow filesystem (local, S3, ...).
        root: the dataset's root inside ``fs``, without a trailing slash.
        given: the value as the user gave it (credentials included): what another process,
            such as a node agent writing its own parts, resolves again. Never shown or stored.
    """

    fs: pafs.FileSystem
    root: str
    given: str

    @property
    def local(self) -> bool:
        """Return whether the dataset is a folder on this machine's file system."""
        return self.fs.type_name == "local"

    @property
    def shown(self) -> str:
        """Return the location as messages show and runs store it: the folder, or the URI without credentials."""
        return self.root if self.local else redact(self.given)

    def path(self, relative: str) -> str:
        """Return the full path in ``fs`` of a path relative to the root."""
        return f"{self.root}/{relative}" if self.root else relative

    def relative(self, path: str) -> str:
        """Return ``path`` (a full path in ``fs``) relative to the root."""
        return path[len(self.root) + 1:] if self.root else path

    def __str__(self) -> str:
        return self.shown


def resolve_location(value: str | os.PathLike | Location) -> Location:
    """Return the ``Location`` of a ``--results`` value: a local path, or a URI pyarrow can open.

    Raises:
        UserError: a URI no pyarrow filesystem opens (unknown scheme, bad option, no bucket).
    """
    if isinstance(value, Location):
        return value
    text = os.fspath(value)
    if not is_uri(text):
        import pyarrow.fs as pafs

        return Location(pafs.LocalFileSystem(), str(Path(text).expanduser().resolve()), text)
    return _resolve_uri(text)


@functools.lru_cache(maxsize=16)
def _resolve_uri(text: str) -> Location:
    """Open a URI's filesystem once per process (an S3 bucket's region may take a request)."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(_with_defaults(text))
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = _reason(exc)
        raise UserError(f"--results {redact(text)!r} is neither a folder nor a URI pyarrow can open ({reason}); "
                        f"pass a folder or a URI such as {EXAMPLE}.") from None
    root = path.rstrip("/")
    if not root and fs.type_name != "local":
        raise UserError(f"--results {redact(text)!r} names no bucket; pass one, e.g. {EXAMPLE}.")
    return Location(fs, root, text)


def _with_defaults(uri: str) -> str:
    """Add ``allow_delayed_open=true`` to an ``s3://`` URI: a small file is then one PUT, not a multipart upload."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or "allow_delayed_open" in dict(parse_qsl(parts.query)):
        return uri
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("allow_delayed_open", "true")])
    return urlunsplit(parts._replace(query=query))


def _reason(exc: BaseException) -> str:
    """Return the first line of a pyarrow/AWS error, without request ids and details."""
    text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    if "AWS Error " in text:
        text = "AWS Error " + text.split("AWS Error ", 1)[1]
    return re.sub(r"\s*(\(Request ID:[^)]*\)|; Details:.*)", "", text).rstrip(" .;:")


def check_writable(value: str | os.PathLike | Location) -> Location:
    """Return the location after checking that it can be written; leaves nothing behind.

    A missing local folder is fine when its nearest existing parent is a writable folder; on
    object storage a probe object is written and deleted (pyarrow keeps the folder it was in
    as an empty marker, so that it goes on existing, as a folder would).

    Raises:
        UserError: the folder (or the parent it would be made in) or the bucket cannot be written.
    """
    location = resolve_location(value)
    if location.local:
        _check_folder(Path(location.root))
        return location
    probe = location.path(f"_manifests/.write-check-{secrets.token_hex(4)}")
    try:
        with location.fs.open_output_stream(probe) as out:
            out.write(b"")
        location.fs.delete_file(probe)
    except OSError as exc:
        raise UserError(f"Results location {location.shown!r} cannot be written (writing a test object failed: "
                        f"{_reason(exc)}); check the bucket, the endpoint and the credentials "
                        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), or pass another "
                        "--results.") from None
    return location


def _check_folder(root: Path) -> None:
    probe = root
    while not probe.exists():
        probe = probe.parent
    # os.access says yes to root everywhere (even /proc); only a real attempt tells.
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".topobench-write-check-", dir=probe))
    except OSError as exc:
        where = "it" if probe == root else f"its parent {str(probe)!r}"
        raise UserError(f"Results folder {str(root)!r} is not writable (creating a file in {where} failed: "
                        f"{exc.strerror or exc}); pass a writable folder with --results DIR.") from None


def describe_failure(exc: OSError) -> str:
    """Return what a failed read or write says, in a few words (file name and reason, no request ids)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return _reason(exc)
