"""Command line: ``aperflow simulate OUTDIR`` writes the demo data; ``aperflow info FILE``
prints what aperflow reads from an image."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _simulate(args: argparse.Namespace) -> int:
    from aperflow.simulate import DEMO_KINDS, simulate_demo

    kinds = args.kinds or DEMO_KINDS
    written = simulate_demo(args.outdir, seed=args.seed, kinds=kinds)
    for kind, paths in written.items():
        print(f"{kind}: {len(paths)} images in {args.outdir}/{kind}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from aperflow.images import ImageError, open_image

    status = 0
    for path in args.files:
        try:
            image = open_image(path)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        cal = image.flux_calibration()
        print(f"{path}\n  group {image.meta.group}, shape {image.shape}, unit {image.meta.bunit}")
        print(
            f"  bad pixels {int(image.mask.sum())}, WCS {'yes' if image.wcs else 'no'}, "
            f"scale {image.pixel_scale()} arcsec/px"
        )
        print(f"  calibration: {cal.system} zero point {cal.zeropoint:.4f} ({cal.note})")
    return status


def _outputs(args: argparse.Namespace) -> int:
    from aperflow.outputs_doc import describe_outputs

    print(describe_outputs(args.results))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aperflow`` command."""
    parser = argparse.ArgumentParser(prog="aperflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="write the built-in demo data with truth tables")
    sim.add_argument("outdir")
    sim.add_argument("--seed", type=int, default=20260101)
    sim.add_argument("--kinds", nargs="*", choices=["field", "standard", "timeseries", "forced"])
    sim.set_defaults(func=_simulate)
    info = sub.add_parser("info", help="show how aperflow reads FITS images")
    info.add_argument("files", nargs="+")
    info.set_defaults(func=_info)
    outputs = sub.add_parser(
        "outputs", help="document a run's output files and columns (markdown)"
    )
    outputs.add_argument("results", nargs="?", default="results")
    outputs.set_defaults(func=_outputs)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
