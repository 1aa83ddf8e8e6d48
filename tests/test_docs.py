"""The documentation a user has runs as written: every Python block of the README, verbatim, and the
notebook docs/explore.ipynb, each executed in a Jupyter kernel (nbclient, with ipympl for
`%matplotlib widget`), so a magic or an API change that breaks them fails here."""
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import dln

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)


def _execute(nb, tmp_path):
    """Run every cell in a fresh kernel started in `tmp_path` (so nothing is written into the repo);
    a cell that raises fails the test with the cell's traceback."""
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def test_readme_has_python_blocks():
    """The extraction below finds the blocks (the Quick start and the Jupyter explorer at least), so
    the parametrized test is not vacuous."""
    assert len(BLOCKS) >= 2 and any(b.startswith("%matplotlib widget") for b in BLOCKS)


def _ends(value):
    """An axis of a sweep spec cut to its two ends (`[first, last]`; a `logspace`/`linspace` to 2 points);
    any other value as it is."""
    if isinstance(value, list):
        return [value[0], value[-1]]
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("logspace", "linspace"):
        (kind, (a, b, _)), = value.items()
        return {kind: [a, b, 2]}
    return value


def _phase_store(where):
    """`phase.zarr` as the README's `dln sweep phase.toml --out phase.zarr` writes it, in a reduced form:
    the README's own spec (its TOML block) with every axis cut to its two ends, 32 grid points in
    about 2 s instead of 4,800 in minutes; the store's layout (dimensions, variables, coordinates)
    is the one the full sweep writes, which is what the block that reads it depends on."""
    spec = tomllib.loads(re.search(r"^```toml\n(.*?)^```", README, flags=re.S | re.M).group(1))
    dln.sweep({section: {k: _ends(v) for k, v in keys.items()} for section, keys in spec.items()},
              out=where / "phase.zarr", workers=1, progress=False)


#: files that README blocks read and that only the README's shell commands make, at a cost CI does not pay:
#: each is made in its reduced form beside the block, which then runs verbatim
MADE_BY_SHELL = {"phase.zarr": _phase_store}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0][:40] for b in BLOCKS])
def test_readme_python_block_runs_verbatim(block, tmp_path):
    for name, make in MADE_BY_SHELL.items():
        if f'"{name}"' in block:
            make(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(block)]
    _execute(nb, tmp_path)


def test_explore_notebook_runs(tmp_path):
    nb = nbformat.read(ROOT / "docs" / "explore.ipynb", as_version=4)
    _execute(nb, tmp_path)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # the notebook prints the statuses of its two simulations once they have arrived
    assert outputs.count("converged") + outputs.count("collapsed") + outputs.count("max_steps") >= 2, outputs


def test_docs_point_at_files_the_project_ships():
    """The theory ships as docs/theory.md: no file refers to a THEORY.md or ../shared that a user of the
    project does not have, and every relative Markdown link of the README resolves."""
    texts = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".ipynb", ".toml") and p.is_file()
             and p != Path(__file__).resolve() and not any(part.startswith(".") or part in ("build", "dist") or part.endswith(".egg-info")
                         for part in p.relative_to(ROOT).parts)]
    assert len(texts) > 20
    stale = [str(p.relative_to(ROOT)) for p in texts if "THEORY.md" in (t := p.read_text(errors="replace"))
             or "../shared" in t or "shared/docs" in t]
    assert not stale, stale
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert "docs/theory.md" in links and all((ROOT / link).exists() for link in links), links
