"""The secret that lets a training script push runs into a local server.

The server creates it the first time it starts, in a file only the user can read
(0600, in a 0700 directory): $BACKPROPLAB_WATCH_SECRET_FILE, else
$XDG_CONFIG_HOME/backproplab/watch-secret (~/.config/...). `watch()` reads the same
file; a web page the user visits cannot, so it cannot push runs into the server.
Delete the file to rotate the secret (the next server start makes a new one)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

HEADER = "X-Backproplab-Secret"
REFUSED = (f"pushing a watched run needs the server's secret in the {HEADER} header "
           f"(backproplab.watch reads it from the file the server wrote at start)")


def secret_path() -> Path:
    explicit = os.environ.get("BACKPROPLAB_WATCH_SECRET_FILE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "backproplab" / "watch-secret"


def read_secret(path: Path | None = None) -> str | None:
    """The secret, or None when there is no file (no server has started yet)."""
    path = path or secret_path()
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def ensure_secret(path: Path | None = None) -> str:
    """The existing secret if its file is the user's alone, else a new one written with
    mode 0600 (created with that mode: never readable by others, even briefly)."""
    path = path or secret_path()
    existing = read_secret(path)
    if existing and _private(path):
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return value


def _private(path: Path) -> bool:
    info = path.stat()
    owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return owner_ok and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
