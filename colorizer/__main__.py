"""Command line: ``python -m colorizer {models,colorize,evaluate}``.

    python -m colorizer models
    python -m colorizer colorize photo.jpg folder/ --out colorized/   # the default model
    python -m colorizer colorize photo.jpg folder/ --model eccv16 --out colorized/ --uncertainty
    python -m colorizer evaluate --model gray eccv16 --images photos/ --out results/eval_photos
    python -m colorizer export-onnx --model landscape landscape.onnx   # then --model landscape.onnx

Bad input, an unknown model or missing weights end with a one-line ``error: ...`` on stderr and
exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from colorizer.atomic import check_writable_folder

log = logging.getLogger("colorizer")


def temperature_arg(text: str) -> float:
    """--temperature: a number that bins.Decoding accepts (the one check of a temperature)."""
    from colorizer.bins import Decoding, DecodingError

    try:
        return Decoding(float(text)).temperature
    except ValueError as e:  # float() or DecodingError
        msg = str(e) if isinstance(e, DecodingError) else f"not a number: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def unit_float(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return v


def random_hint_count(text: str) -> int:
    """``random:N`` -> N (evaluate's simulated user: N random points per photo)."""
    kind, _, n = text.partition(":")
    if kind != "random" or not n.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected random:N with N >= 0 (e.g. random:10); got {text!r}"
        )
    return int(n)


def build_parser() -> argparse.ArgumentParser:
    from colorizer.models import DEFAULT_MODEL

    p = argparse.ArgumentParser(
        prog="python -m colorizer",
        description="Colorize landscape and street photographs; evaluate colorizers.",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(
        dest="command", required=True, metavar="{models,colorize,evaluate,export-onnx}"
    )

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
        sp.add_argument(
            "--weights-dir",
            help="where registry weights are looked up (default: weights/ or $COLORIZER_WEIGHTS_DIR)",
        )

    m = sub.add_parser("models", help="list the models, whether their weights are here")
    m.add_argument("--weights-dir", help="look for weights here instead of weights/")
    m.add_argument(
        "--all",
        action="store_true",
        help="also the architectures without weights (to train) and the tiny test variants",
    )

    c = sub.add_parser("colorize", help="colorize photos and folders into an output folder")
    c.add_argument("inputs", nargs="+", metavar="IN", help="image files and/or folders")
    c.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"registry name, checkpoint path, or 'gray' (default: {DEFAULT_MODEL!r}, the "
        f"shipped weights/{DEFAULT_MODEL}.pt)",
    )
    c.add_argument("--out", required=True, help="output folder (created); outputs are <stem>.png")
    c.add_argument(
        "--temperature",
        type=temperature_arg,
        help="decode temperature T (lower = more vivid; default: the model's own)",
    )
    c.add_argument(
        "--uncertainty", action="store_true", help="also write <stem>_uncertainty.png maps"
    )
    c.add_argument(
        "--hints",
        metavar="HINTS.json",
        help='user colour hints: {"hints": [{"x": 120, "y": 48, "rgb": [200, 30, 30]}, ...]} for '
        "every photo, or {photo file name: [...]} (docs/hints.md); models that take hints only",
    )
    c.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    c.add_argument("--no-recursive", action="store_true", help="do not descend into subfolders")
    c.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="what runs the network: torch, or onnxruntime on the CPU (exported at start, "
        "checked against torch; faster for colornet and effunet models)",
    )
    common(c)

    e = sub.add_parser("evaluate", help="score models and/or predictions against ground truth")
    e.add_argument(
        "--model",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME",
        help="one or more models (registry names, checkpoint paths, 'gray'); a row each",
    )
    e.add_argument("--predictions", help="folder of ready-made colorizations, matched by stem")
    e.add_argument("--images", required=True, help="folder of ground-truth colour photos")
    e.add_argument("--out", required=True, help="output folder for per_photo.csv, summary.*")
    e.add_argument(
        "--size",
        type=non_negative_int,
        default=256,
        help="score at size x size, like the first seed (default 256; 0 = as is)",
    )
    e.add_argument("--temperature", type=temperature_arg, help="decode temperature for all models")
    e.add_argument("--limit", type=non_negative_int, help="only the first N photos (sorted)")
    e.add_argument(
        "--grid",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also write grid.png: the first N photos, ground truth beside each model",
    )
    e.add_argument(
        "--hints",
        type=random_hint_count,
        default=0,
        metavar="random:N",
        help="give each model N simulated user hints per photo: random points, each the "
        "truth's mean colour over a 5x5 patch there, a fixed seed per photo (default: none)",
    )
    e.add_argument(
        "--rebalance-lam",
        type=unit_float,
        default=0.0,
        help="lambda of the class weights for 'AuC rebal.' (default 0: inverse frequency)",
    )
    common(e)
    add_export_onnx(sub)
    return p


def loaded_facts(name: str, weights_dir: str | None) -> tuple[str, str]:
    """What a model with weights here really does, from the loaded file: the temperature it
    decodes at (and whether a calibration moves the decode; "-" for regression models, which
    decode nothing) and whether it takes colour hints."""
    from colorizer.models import create_model

    model = create_model(name, pretrained=True, weights_dir=weights_dir)
    hints = "yes" if getattr(model, "accepts_hints", False) else "-"
    if getattr(model, "kind", "") != "classification":
        return "- (regression)", hints
    return model.decoding.describe(), hints


def cmd_models(args: argparse.Namespace) -> int:
    from colorizer.inference import GRAY
    from colorizer.models import list_models, model_info

    rows = [("name", "family", "weights", "decodes at T", "hints", "description")]
    hidden = 0
    for name in list_models():
        info = model_info(name, args.weights_dir)
        if info["weights"] is None and not args.all:
            hidden += 1  # an architecture to train, or a tiny test variant
            continue
        if info["weights"] is None:
            weights = "none (random init; train it)"
        elif info["weights_present"]:
            weights = f"present: {info['weights_path']}"
        else:
            weights = f"MISSING: put it at {info['weights_path']}"
        if info["weights_present"]:
            t, hints = loaded_facts(name, args.weights_dir)
        else:
            t = "-" if info["decoding"] is None else info["decoding"].describe()
            hints = "-"
        rows.append((name, info["family"], weights, t, hints, info["description"]))
    rows.append(
        (
            GRAY,
            "baseline",
            "none needed",
            "-",
            "-",
            "a*b* = 0: the grey floor every model must beat",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    if hidden:
        print(f"({hidden} architectures without weights not shown: --all lists them)")
    return 0


def check_inputs(inputs: list[str], out: str, recursive: bool) -> list:
    """Refuse, before the model loads, inputs that cannot give a single output: a missing
    path, the output folder given as an input, or nothing that is an image. Returns the
    planned (input, output) pairs."""
    from pathlib import Path

    from colorizer.inference import plan_outputs

    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: '{missing[0]}'")
    out_path = Path(out).resolve()
    for p in inputs:
        if Path(p).is_dir() and Path(p).resolve() == out_path:
            raise ValueError(f"--out '{out}' is an input folder: write the outputs elsewhere")
    pairs, _ = plan_outputs(inputs, out, recursive)
    if not pairs:
        raise ValueError(f"no images found in {', '.join(repr(p) for p in inputs)}")
    return pairs


def read_hints(path: str, pairs: list) -> dict:
    """The hints file checked against the photos it names (``pairs``: check_inputs' plan;
    their sizes read from the file headers), before any model loads: one HintError for the
    first problem."""
    from colorizer.hints import HintError, check_inside, load_hints_file
    from colorizer.imageio import ImageError, image_size

    hints = load_hints_file(path, sorted({src.name for src, _ in pairs}))
    for src, _ in pairs:
        if hints.get(src.name):
            try:
                w, h = image_size(src)
            except ImageError:  # an unreadable photo is reported by the run, as without hints
                continue
            check_inside(hints[src.name], w, h, f"{path}: {src.name}")
    if not any(hints.values()):
        raise HintError(f"{path}: no hint for any of the input photos")
    return hints


def cmd_colorize(args: argparse.Namespace) -> int:
    from colorizer.inference import Colorizer, colorize_many

    recursive = not args.no_recursive
    pairs = check_inputs(args.inputs, args.out, recursive)  # before loading a model
    hints = read_hints(args.hints, pairs) if args.hints else None
    check_writable_folder(args.out)
    colorizer = Colorizer(
        args.model, device=args.device, weights_dir=args.weights_dir, backend=args.backend
    )
    if hints and not colorizer.accepts_hints:
        from colorizer.hints import no_hints_error

        raise no_hints_error(colorizer.name, colorizer.backend)
    report = colorize_many(
        colorizer,
        args.inputs,
        args.out,
        temperature=args.temperature,
        uncertainty=args.uncertainty,
        overwrite=args.overwrite,
        recursive=recursive,
        progress=not args.quiet,
        hints=hints,
    )
    for src, why in report.skipped:  # one line per input left out; reasons may name it already
        print(f"skipped {why}" if str(src) in why else f"skipped {src}: {why}", file=sys.stderr)
    if args.uncertainty and colorizer.kind != "classification":
        log.warning("%s is a regression model: it has no uncertainty to write", colorizer.name)
    log.info("%s -> %s", report.summary(), args.out)
    if report.failed:
        print(
            f"error: {len(report.failed)} input(s) could not be colorized (see above)",
            file=sys.stderr,
        )
        return 2
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from colorizer.evaluate import EvalConfig, run

    if not args.model and not args.predictions:
        raise ValueError("give --model NAME [NAME ...] and/or --predictions DIR")
    check_writable_folder(args.out)
    cfg = EvalConfig(
        size=args.size,
        temperature=args.temperature,
        rebalance_lam=args.rebalance_lam,
        limit=args.limit,
        grid=args.grid,
        hints=args.hints,
        device=args.device,
        weights_dir=args.weights_dir,
    )
    result = run(args.model, args.images, args.out, args.predictions, cfg, progress=not args.quiet)
    cols = [
        "model",
        "n",
        "euclidean_mean",
        "psnr_seed_mean",
        "psnr_db_mean",
        "ssim_mean",
        "auc_mean",
    ]
    print(result.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for p, why in result.skipped:
        print(f"skipped {p}: {why}", file=sys.stderr)
    if result.unmatched:
        print(
            f"{len(result.unmatched)} prediction file(s) matched no ground truth", file=sys.stderr
        )
    return 0


def add_export_onnx(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser(
        "export-onnx",
        help="export a model's network to ONNX (checked against torch with onnxruntime)",
    )
    x.add_argument("--model", required=True, help="registry name or checkpoint path")
    x.add_argument("out", metavar="OUT.onnx", help="file to write (replaced atomically)")
    x.add_argument(
        "--weights-dir",
        help="where registry weights are looked up (default: weights/ or $COLORIZER_WEIGHTS_DIR)",
    )


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from pathlib import Path

    from colorizer.inference import load_model
    from colorizer.onnx import export_onnx

    check_writable_folder(str(Path(args.out).parent))
    report = export_onnx(load_model(args.model, weights_dir=args.weights_dir)[0], args.out)
    print(f"wrote {args.out}: {report.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from colorizer.checkpoint import CheckpointError
    from colorizer.imageio import ImageError

    handlers = {
        "models": cmd_models,
        "colorize": cmd_colorize,
        "evaluate": cmd_evaluate,
        "export-onnx": cmd_export_onnx,
    }
    try:
        return handlers[args.command](args)
    except (ImageError, CheckpointError, OSError, ValueError) as e:
        # ModelError is a ValueError; OSError covers missing paths and unwritable folders.
        # One line, no traceback: these are the user's to fix.
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
