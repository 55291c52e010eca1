"""python -m reports [--results STORE] [--readme README.md] [--check | --init | --compare MODEL] [--plot PNG]

Renders every table of the reference model-zoo page from the results store into the marked
blocks of the README, each with the `published` row (reports/published/deepcluster.json).
`--compare MODEL` prints, per table cell, MODEL's value, the published one and the difference, and
changes nothing. Exit status: 0 done / up to date, 1 README stale (--check), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.render import ReadmeError, check_readme, render_readme

DEFAULT_RESULTS = Path("results/results.jsonl")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=None, help=f"results store (default: {DEFAULT_RESULTS})")
    p.add_argument("--readme", type=Path, default=Path("README.md"), help="README with the table markers")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="render in memory; exit 1 with a unified diff when the README is stale")
    mode.add_argument("--init", action="store_true",
                      help="append the missing tables' headings and markers (creates the README if absent)")
    mode.add_argument("--compare", metavar="MODEL", default=None,
                      help="print MODEL's cells beside the published ones and the differences; write nothing")
    p.add_argument("--plot", type=Path, default=None, help="also write the low-shot mAP-vs-k plot here (PNG)")
    return p.parse_args(argv)


def _results_path(args: argparse.Namespace) -> Path:
    if args.results is not None:
        if not args.results.exists():
            raise ReadmeError(f"results store {args.results} does not exist")
        return args.results
    if not DEFAULT_RESULTS.exists():
        print(f"note: no results store at {DEFAULT_RESULTS}; the tables list no models", file=sys.stderr)
    return DEFAULT_RESULTS


def _plot(results: Path, out_png: Path) -> None:
    from dcbench.results import ResultStore
    from reports.plots import lowshot_plot

    lowshot_plot(ResultStore(results).read(), out_png)
    print(f"plot: {out_png}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = _results_path(args)
        if args.compare is not None:
            from dcbench.results import ResultStore
            from reports.compare import compare

            print(compare(ResultStore(results).read(), args.compare))
            return 0
        if args.check:
            diff = check_readme(results, args.readme)
            if diff:
                sys.stdout.write(diff)
                print(f"error: {args.readme} is stale; run `python -m reports` to update it", file=sys.stderr)
                return 1
            print(f"{args.readme} is up to date")
            return 0
        changed = render_readme(results, args.readme, init=args.init)
        print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
        if args.plot is not None:
            _plot(results, args.plot)
    except (ReadmeError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
