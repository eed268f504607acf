"""Who may talk to the server: loopback by default, a bearer token off it.

The token lives in a file only its owner can read (0600) in the user's config directory
(``forensics-serve --make-token`` writes one); the server refuses to listen beyond loopback
without it, and refuses a token file that others can read.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from pathlib import Path

TOKEN_FILE_NAME = "serve-token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class AccessError(Exception):
    """A setting that would expose the server; the message says how to fix it."""


def default_token_path() -> Path:
    from forensics_app.paths import user_config_dir

    return user_config_dir() / TOKEN_FILE_NAME


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def make_token(path: Path | None = None) -> Path:
    """Write a new random token (256 bits) to ``path``, readable by its owner only."""
    path = Path(path or default_token_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_token(path: Path) -> str:
    """The token in ``path``; raises :class:`AccessError` when it is unusable."""
    try:
        st = path.stat()
    except OSError as exc:
        raise AccessError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AccessError(f"the token file {path} can be read by other users "
                          f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}")
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if len(token) < 16:
        raise AccessError(f"the token in {path} is shorter than 16 characters; make a new one "
                          "with: forensics-serve --make-token")
    return token


def resolve_token(host: str, token_file: Path | None) -> str | None:
    """The token the server requires, or None (loopback without a token file).

    An explicit ``token_file`` is always used; the default one is used when it exists. Off
    loopback a token is mandatory: :class:`AccessError` says how to make one.
    """
    path = token_file or default_token_path()
    if token_file is not None or path.is_file():
        return read_token(path)
    if not is_loopback(host):
        raise AccessError(
            f"refusing to listen on {host} without a token: anyone who can reach it could "
            f"submit and read evidence. Make one with `forensics-serve --make-token` (writes "
            f"{path}, mode 0600), then start again; clients send it as "
            "'Authorization: Bearer <token>'")
    return None


def token_matches(expected: str, authorization: str | None) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              expected.encode())
