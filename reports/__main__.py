"""python -m reports [--results STORE] [--readme README.md] [--check | --init | --compare MODEL] [--plot PNG]
                   [--html DIR [--pretrain-log [NAME=]LOG.jsonl ...]] [--metafile OUT.yml]
                   [--csv OUT.csv [--all-rows]]

Renders every table of the reference model-zoo page from the results store into the marked
blocks of the README, each with the `published` row (reports/published/deepcluster.json).
`--compare MODEL` prints, per table cell, MODEL's value, the published one and the difference, and
changes nothing. `--html DIR` writes the static leaderboard (open DIR/index.html),
`--metafile` an OpenMMLab-style metafile, `--csv` the store as CSV; with any of these and no
`--readme`, the README is left alone. Exit status: 0 done / up to date, 1 README stale (--check),
2 bad input (missing store or README, malformed markers), each with one line on stderr. Lines of
the store that are not whole rows (a torn write) are reported on stderr and ignored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from reports.render import ReadmeError, check_readme, render_readme

DEFAULT_RESULTS = Path("results/results.jsonl")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=None, help=f"results store (default: {DEFAULT_RESULTS})")
    p.add_argument("--readme", type=Path, default=None,
                   help="README with the table markers (default README.md unless only exports are asked)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="render in memory; exit 1 with a unified diff when the README is stale")
    mode.add_argument("--init", action="store_true",
                      help="append the missing tables' headings and markers (creates the README if absent)")
    mode.add_argument("--compare", metavar="MODEL", default=None,
                      help="print MODEL's cells beside the published ones and the differences; write nothing")
    p.add_argument("--plot", type=Path, default=None, help="also write the low-shot mAP-vs-k plot here (PNG)")
    p.add_argument("--html", type=Path, default=None, help="write the static HTML leaderboard here")
    p.add_argument("--pretrain-log", action="append", default=[], metavar="[NAME=]LOG",
                   help="a pretraining log.jsonl whose health curves the site shows (repeatable)")
    p.add_argument("--metafile", type=Path, default=None, help="write an OpenMMLab-style metafile (YAML)")
    p.add_argument("--csv", type=Path, default=None, help="write the store's current rows as CSV")
    p.add_argument("--all-rows", action="store_true", help="with --csv: every row of the store")
    args = p.parse_args(argv)
    exports = args.html is not None or args.metafile is not None or args.csv is not None
    if args.readme is None and (args.check or args.init or not exports):
        args.readme = Path("README.md")
    return args


def _pretrain_logs(specs: list[str]) -> dict[str, Path]:
    """`NAME=PATH` or `PATH` (named after its folder) -> {name: path}; a missing file is an error."""
    logs = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        log = Path(path)
        if not log.is_file():
            raise ReadmeError(f"pretraining log {log} does not exist")
        logs[name or log.parent.name or log.stem] = log
    return logs


def _exports(args: argparse.Namespace, results: Path) -> None:
    from dcbench.results import ResultStore

    frame = ResultStore(results).read()
    if args.html is not None:
        from reports.site import write_site

        logs = _pretrain_logs(args.pretrain_log)
        index = write_site(frame, args.html, store=str(results), pretrain_logs=logs)
        print(f"site: {index} (open it in a browser; no server needed)")
    if args.metafile is not None:
        from reports.metafile import write_metafile

        print(f"metafile: {write_metafile(frame, args.metafile)}")
    if args.csv is not None:
        from reports.export import write_csv

        print(f"csv: {write_csv(frame, args.csv, all_rows=args.all_rows)}")


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
    log = logging.getLogger("deepcluster_bench")
    handler = logging.StreamHandler(sys.stderr)  # e.g. torn store lines: one warning line each
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    log.addHandler(handler)
    try:
        return _main(args)
    finally:
        log.removeHandler(handler)


def _main(args: argparse.Namespace) -> int:
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
        if args.readme is not None:
            changed = render_readme(results, args.readme, init=args.init)
            print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
        if args.plot is not None:
            _plot(results, args.plot)
        _exports(args, results)
    except (ReadmeError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
