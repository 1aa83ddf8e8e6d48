"""Files the tool writes are complete or absent, and output paths are checked before any work."""
import os
import stat
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
        kind = _special(target)
        if kind:  # `writable_file` refuses it before any work; this holds for library callers too
            raise InputError(f"`path` must be a regular file or a new name; {str(target)!r} is a {kind}: not replaced")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


#: what an existing path that is not a regular file is, by `stat` test
_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"))


def _special(path):
    """What `path` is ("character device", "FIFO (named pipe)", ...) when it exists and is not a regular
    file (following symbolic links), else None. `os.replace` onto it would replace a device node or a
    pipe by a regular file, or fail on a directory."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # absent, or a dangling link: a new file
        return None
    return None if stat.S_ISREG(mode) else next((kind for test, kind in _KINDS if test(mode)), "special file")


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
    new files; it is new or a regular file, not a directory, device, FIFO or socket); `flag` names the
    option in the error. Returns `path`."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        raise InputError(f"`{flag}` must be a file path, not a directory; got {str(path)!r}")
    kind = _special(p)
    if kind:
        raise InputError(f"`{flag}` must be a regular file or a new name (it is replaced when the work is done); "
                         f"got {str(path)!r}, a {kind}")
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
