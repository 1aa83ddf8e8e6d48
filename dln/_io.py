"""Files the tool writes are complete or absent, and output paths are checked before any work."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ._checks import InputError


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same directory and extension); when the block
    succeeds it is renamed onto `path` (`os.replace`, mode 0644), otherwise removed.

    The temporary name, `NAME.incomplete-XXXXXXXX.EXT`, says what it is, so a file left behind
    by a process killed outright (SIGKILL, power loss: no cleanup can run) is not mistaken for
    a result; Ctrl-C and SIGTERM of `dln` remove it (`dln.cli`)."""
    target = Path(path).absolute()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{target.stem}.incomplete-", suffix=target.suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes files readable by the owner only
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _probe(directory, flag, what):
    """Create and remove a file in `directory`: the one test of writability that also holds for
    read-only mounts, /proc and root (where `os.access` answers yes)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".dln-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"`{flag}` {what} is not writable: {e.strerror or e}") from None


def writable_file(path, flag):
    """Check, before any work, that the file `path` can be written (its directory exists and takes
    new files; it is not a directory); `flag` names the option in the error. Returns `path`."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        raise InputError(f"`{flag}` must be a file path, not a directory; got {str(path)!r}")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise InputError(f"`{flag}` must be a path in an existing directory; {str(parent)!r} does not exist "
                         f"(got {str(path)!r})")
    _probe(parent, flag, f"directory {str(parent)!r}")
    return path


def writable_dir(path, flag):
    """Create the directory `path` (with its parents) if needed and check it takes new files, before
    any work; `flag` names the option in the error. Returns `path`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"`{flag}` must be a directory; {str(path)!r} is an existing file")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"`{flag}` directory {str(path)!r} cannot be created: {e.strerror or e}") from None
    _probe(p, flag, f"directory {str(path)!r}")
    return path
