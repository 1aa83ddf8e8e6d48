"""`dln figures`: regenerate the theory figures, one script per figure.

Each `figures/figNN_name.py` has `main(out_dir, quick=False, formats=None)`
returning the paths it wrote (the figure in each format and `figNN_name.txt`,
its numbers). `--quick` runs every figure on reduced grids.
"""
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

from dln import InputError
from dln._io import writable_dir
from dln.cli import raise_if_interrupted

from . import _common as C


def available():
    """Figure modules `figNN_name`, in order."""
    pkg = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(pkg)]) if m.name.startswith("fig") and
                  m.name[3:5].isdigit())


def resolve(names):
    """Module names for `--only` values: the full name (`fig03_alpha_eff`), the short name
    (`alpha_eff`) or the number (`3`, `03`)."""
    figs = available()
    if not names:
        return figs
    out = []
    for name in names:
        hits = [f for f in figs if name in (f, f[6:], f[3:5], f[3:5].lstrip("0"))]
        if not hits:
            raise InputError(f"`--only` must name figures among {', '.join(figs)} (or their short names or "
                             f"numbers); got {name!r}")
        out += [h for h in hits if h not in out]
    return out


def formats(text):
    """`--format` value, comma-separated, into a tuple of formats."""
    fmts = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in C.ALLOWED_FORMATS]
    if not fmts or bad:
        raise InputError(f"`--format` must be a comma-separated list of {', '.join(C.ALLOWED_FORMATS)}; got {text!r}")
    return fmts


def add_arguments(parser, cmd=None):
    parser.add_argument("--quick", action="store_true",
                        help="reduced grids: every figure in under 2 minutes on 2 cores")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="figures to make: fig03_alpha_eff, alpha_eff or 3 (default: all of "
                             + ", ".join(available()) + ")")
    parser.add_argument("--out", default="figures_out", metavar="DIR", help="output directory (default ./figures_out)")
    parser.add_argument("--format", default=",".join(C.DEFAULT_FORMATS), metavar="FMT",
                        help=f"comma-separated, among {', '.join(C.ALLOWED_FORMATS)} (default png,pdf)")
    parser.add_argument("--list", action="store_true", help="list the figures and the claim each shows, then exit")
    parser.add_argument("--thumbnails", metavar="DIR",
                        help="also write small PNG copies into DIR (the README gallery: docs/gallery)")


def main(args, cmd=None):
    names = resolve(args.only)
    fmts = formats(args.format)
    if args.thumbnails and "png" not in fmts:
        raise InputError(f"`--thumbnails` needs png among `--format`; got {args.format!r}")
    if args.list:
        for n in names:
            doc = (importlib.import_module(f"figures.{n}").__doc__ or "").strip().splitlines()
            print(f"{n}: {doc[0] if doc else ''}")
        return 0
    writable_dir(args.out, "--out")  # before any work: a figure takes seconds to minutes
    if args.thumbnails:
        writable_dir(args.thumbnails, "--thumbnails")
    import matplotlib
    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    out = Path(args.out)
    total = time.perf_counter()
    bar = tqdm(names, desc="figures", unit="fig", position=0, dynamic_ncols=True,
               disable=True if os.environ.get("DLN_NO_PROGRESS") == "1" else None)
    lines = []
    for n in bar:
        bar.set_postfix_str(n)
        t0 = time.perf_counter()
        paths = importlib.import_module(f"figures.{n}").main(out, quick=args.quick, formats=fmts)
        dt = time.perf_counter() - t0
        lines.append(f"{n}: {dt:.1f} s -> {', '.join(str(p) for p in paths)}")
        if args.thumbnails:
            pngs = [p for p in paths if str(p).endswith(".png")]
            lines += [f"    thumbnail {C.thumbnail(p, args.thumbnails)}" for p in pngs]
        notes = [p for p in paths if str(p).endswith(".txt")]
        for p in notes:
            lines += ["    " + s for s in Path(p).read_text().splitlines()]
        raise_if_interrupted()  # a Ctrl-C swallowed during this figure stops before the next one
    bar.close()
    sys.stdout.write("\n".join(lines) + f"\n{len(names)} figure(s) in {time.perf_counter() - total:.1f} s "
                     f"({'quick' if args.quick else 'full'}) in {out}/\n")
    return 0
