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
from typing import Any

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
    if not stat.S_ISREG(st.st_mode):
        raise AccessError(f"the token file {path} is not a file (a folder?); name the file "
                          "--make-token wrote")
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AccessError(f"the token file {path} can be read by other users "
                          f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}")
    try:
        token = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as exc:
        raise AccessError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
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


# Methods that change something; the others only read (and a cross-site read gets no CORS
# header, so the other site's page cannot see the answer).
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _netloc(host: str, scheme: str = "http") -> str:
    """``host[:port]`` lower-cased, without the scheme's default port."""
    host = host.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and host.endswith(f":{default}"):
        host = host[: -len(default) - 1]
    return host


def host_allowed(host_header: str | None, allowed: list[str]) -> bool:
    """The Host header names one of ``allowed`` (any port): refuses DNS rebinding."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8765
        name = host.split("]", 1)[0] + "]"
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in {a.lower() for a in allowed}


def cross_site_refusal(method: str, headers: Any) -> str | None:
    """Why a state-changing request came from another site's page (CSRF), or None.

    Browsers say where a request comes from: ``Sec-Fetch-Site`` (anything but same-origin or
    none -- typed by the user -- is another site) and ``Origin`` (must be this server's own
    scheme-less host and port, as the Host header names it). Clients that send neither (curl,
    scripts) are not browsers a page can drive, and pass; with a token they still need it.
    """
    if method.upper() not in STATE_CHANGING:
        return None
    site = (headers.get("sec-fetch-site") or "").strip().lower()
    if site and site not in ("same-origin", "none"):
        return (f"refused: a {method.upper()} from another site's page (Sec-Fetch-Site: "
                f"{site}); only this server's own page may change its scans")
    origin = headers.get("origin")
    if origin is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(origin.strip())
    own = _netloc(headers.get("host") or "")
    if origin.strip().lower() == "null" or not parts.netloc or \
            _netloc(parts.netloc, parts.scheme) != own:
        return (f"refused: a {method.upper()} from another origin ({origin.strip()[:100]!r}); "
                "only this server's own page may change its scans")
    return None
