"""Files the tool writes are complete or absent."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same directory and extension); when the block
    succeeds it is renamed onto `path` (`os.replace`, mode 0644), otherwise removed."""
    target = Path(path).absolute()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes files readable by the owner only
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
