"""The rule for a file's path inside a Hub repo, checked before any request is made.

huggingface_hub joins the path to a cache folder when it downloads the file, so `../..` or an
absolute path would name a file outside it; the Hub itself knows no such paths either.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath


def repo_file_problem(path: str) -> str | None:
    """Why `path` is not a repo file path (relative, '/'-separated, no '.', '..' or empty part), or None."""
    if not path:
        return "a repo file path must not be empty"
    if "\\" in path:
        return f"{path!r}: a repo file path uses '/', not '\\'"
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).drive:
        return f"{path!r}: a repo file path must be relative"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"{path!r}: a repo file path must have no '..', '.' or empty part"
    return None
