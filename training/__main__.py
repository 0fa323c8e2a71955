"""python -m training {prepare,prior,train,evaluate,calibrate,fit-tilt,add-expert,extract-expert,fit-gate,export,graft} ..."""

from __future__ import annotations

import argparse
import logging
import sys


def _command() -> str:
    """The command as typed, for provenance: python -m training ..."""
    from colorizer.provenance import invocation

    return invocation()


def cmd_prepare(args: argparse.Namespace) -> int:
    from training.prepare import PrepareConfig, parse_size, prepare

    cfg = PrepareConfig(
        images=args.images,
        out=args.out,
        size=parse_size(args.size),
        val_fraction=args.val,
        test_fraction=args.test,
        min_side=args.min_side,
        gray_threshold=args.gray_threshold,
        streetside_crop=args.streetside_crop,
        limit=args.limit,
    )
    s = prepare(cfg, command=_command())
    print(f"found {s.found} files, kept {s.kept}: {s.splits}")
    print("skipped: " + (", ".join(f"{k}={v}" for k, v in s.skipped.items()) or "none"))
    return 0


def cmd_prior(args: argparse.Namespace) -> int:
    from training.prior import compute_prior

    out = compute_prior(args.data, args.bins, lam=args.lam, sigma=args.sigma, out=args.out)
    print(f"wrote {', '.join(str(p) for p in out)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.train import train

    cfg = load_config(args.config, args.set)
    train(cfg, resume=args.resume, command=_command())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_split

    table = evaluate_split(
        args.data,
        args.models,
        split=args.split,
        out=args.out,
        limit=args.limit,
        grid=args.grid,
        command=_command(),
    )
    print(table)
    return 0


def cmd_graft(args: argparse.Namespace) -> int:
    from training.export import graft_hints

    print(f"wrote {graft_hints(args.base, args.hints, args.out)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from training.export import export_checkpoint

    path = export_checkpoint(
        args.ckpt,
        args.out,
        args.metrics,
        args.label,
        half=not args.fp32,
        temperature=args.temperature,
        temperature_note=args.why,
    )
    print(f"wrote {path}")
    return 0


def _non_negative(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def cmd_calibrate(args: argparse.Namespace) -> int:
    from training.calibrate import calibrate

    calibrate(
        args.ckpt,
        args.data,
        args.out,
        split=args.split,
        grid=args.temperatures,
        limit=args.limit,
        min_colour=args.min_colour,
        command=_command(),
        rule=args.rule,
    )
    print(f"wrote {args.out}")
    return 0


def cmd_add_expert(args: argparse.Namespace) -> int:
    from training.export import add_expert

    path = add_expert(
        args.base,
        args.expert,
        args.out,
        replace=args.replace,
        own_encoder=args.own_encoder,
        at=args.at,
    )
    print(f"wrote {path}")
    return 0


def cmd_extract_expert(args: argparse.Namespace) -> int:
    from training.export import expert_alone

    print(f"wrote {expert_alone(args.ckpt, args.expert, args.out)}")
    return 0


def cmd_fit_head(args: argparse.Namespace) -> int:
    """fit-tilt and fit-gate: one per-photo head fitted after training (training.tilt.fit_knob)."""
    from training.gate import fit_gate
    from training.tilt import HeadFitOptions, fit_tilt

    fit = {"fit-tilt": fit_tilt, "fit-gate": fit_gate}[args.cmd]
    opts = HeadFitOptions(
        limit=args.limit,
        val_limit=args.val_limit,
        min_colour=args.min_colour,
        max_loss=args.max_loss,
        colour_slack=args.colour_slack,
        along=tuple(args.along),
        colour_sources=tuple(args.colour_sources),
    )
    which = {"expert": args.expert} if args.cmd == "fit-gate" else {"add_head": args.add_head}
    fit(args.ckpt, args.data, args.out, opts, command=_command(), **which)
    print(f"wrote {args.out}")
    return 0


def _head_fit_args(q: argparse.ArgumentParser, out_help: str) -> None:
    """fit-tilt's and fit-gate's shared arguments (training.tilt.HeadFitOptions)."""
    q.add_argument("--data", required=True, help="a folder written by prepare")
    q.add_argument("--out", required=True, help=out_help)
    q.add_argument(
        "--limit", type=_non_negative, default=3000, help="train photos for the fit (0: all)"
    )
    q.add_argument(
        "--val-limit", type=_non_negative, default=0, help="val photos for the choices (0: all)"
    )
    q.add_argument(
        "--min-colour",
        type=float,
        default=0.8,
        help="the fitted model must keep this share of the photos' colourfulness on val",
    )
    q.add_argument("--max-loss", type=float, default=0.1, help="dB of PSNR any val source may lose")
    q.add_argument(
        "--colour-slack",
        type=float,
        default=0.05,
        help="how far under min(its colour, --min-colour) a val source's colour may go",
    )
    q.add_argument(
        "--along",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="fit along the scene-vector direction that tells these train sources (globs, e.g. "
        "'*weather/dawn-*') from the rest, instead of in its principal components",
    )
    q.add_argument(
        "--colour-sources",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="keep the colour of only these val sources (globs, e.g. '*landscapes'), each on "
        "its own, and not the pooled colour: the others may lose colour for PSNR",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)

    q = sub.add_parser("prepare", help="check, dedupe, resize, split and pack photos")
    q.add_argument("--images", nargs="+", required=True, help="folders (walked recursively)")
    q.add_argument("--out", required=True, help="output folder for <split>.npy + manifest.json")
    q.add_argument("--size", default="256", help="N (square) or WxH, e.g. 112x88")
    q.add_argument("--val", type=float, default=0.1, help="validation fraction")
    q.add_argument("--test", type=float, default=0.1, help="test fraction")
    q.add_argument("--min-side", type=int, default=0, help="skip smaller photos (0: size/2)")
    q.add_argument("--gray-threshold", type=float, default=2.0, help="B&W channel-spread limit")
    q.add_argument(
        "--streetside-crop",
        action="store_true",
        help="cut the Street View GUI band off 1280x1024 frames and downscale by 11",
    )
    q.add_argument("--limit", type=int, default=0, help="keep at most this many photos")
    q.set_defaults(func=cmd_prepare)

    q = sub.add_parser("prior", help="class prior, rebalancing weights and heat map")
    q.add_argument("--data", required=True)
    q.add_argument("--bins", default="zhang313", choices=["zhang313", "seed104"])
    q.add_argument("--lam", type=float, default=0.5)
    q.add_argument("--sigma", type=float, default=5.0)
    q.add_argument("--out", required=True, help="output folder")
    q.set_defaults(func=cmd_prior)

    q = sub.add_parser("train", help="train a model from a TOML config")
    q.add_argument("--config", help="TOML file (default: the TrainConfig defaults)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--resume", action="store_true", help="continue from out_dir/last.pt")
    q.set_defaults(func=cmd_train)

    q = sub.add_parser("evaluate", help="evaluate checkpoints (and gray, eccv16) on a split")
    q.add_argument("--data", required=True)
    q.add_argument("--split", default="test", choices=["train", "val", "test"])
    q.add_argument("--models", nargs="+", required=True, help="checkpoints, 'gray', 'eccv16'")
    q.add_argument("--out", required=True, help="output folder for table + grid")
    q.add_argument("--limit", type=int, default=0, help="evaluate the first N photos only")
    q.add_argument("--grid", type=int, default=6, help="photos in the picture grid (0: none)")
    q.set_defaults(func=cmd_evaluate)
    q = sub.add_parser("calibrate", help="fit how strongly a class model colours, per entropy")
    q.add_argument("--ckpt", required=True, help="a final.pt written by train")
    q.add_argument("--data", required=True, help="a folder written by prepare")
    q.add_argument("--out", required=True, help="the calibrated checkpoint (+ a .csv table)")
    q.add_argument("--split", default="val", choices=["train", "val"])
    q.add_argument("--temperatures", type=float, nargs="+", help="grid (default 0.38 0.5 0.7)")
    q.add_argument(
        "--min-colour",
        type=float,
        default=0.85,
        help="the default must be at least this share of the photos' colourfulness",
    )
    q.add_argument(
        "--limit",
        type=_non_negative,
        default=0,
        help="use N photos spread over the split (every source)",
    )
    q.add_argument(
        "--rule",
        choices=["pooled", "per_source"],
        default="pooled",
        help="hold the colour on the split as a whole (default) or on every source of it",
    )
    q.set_defaults(func=cmd_calibrate)
    q = sub.add_parser("fit-tilt", help="fit how grey each scene is (the model's gray tilt)")
    q.add_argument("--ckpt", required=True, help="a (calibrated) class model's checkpoint")
    _head_fit_args(q, "the tilted checkpoint (+ a _tilt.csv table)")
    q.add_argument(
        "--add-head",
        action="store_true",
        help="keep the file's fitted tilt and fit one more head on top of it (e.g. --along the "
        "streets on a tilt that pulls the grey weather), chosen against the file as it is",
    )
    q.set_defaults(func=cmd_fit_head)
    q = sub.add_parser("add-expert", help="add a decoder, trained on a model's encoder, to it")
    q.add_argument("--base", required=True, help="the model whose encoder the expert grew on")
    q.add_argument("--expert", required=True, help="final.pt of that run (freeze_encoder)")
    q.add_argument("--out", required=True, help="the base + its experts, the new one's gate shut")
    q.add_argument(
        "--replace", action="store_true", help="drop the base's own experts and gates (if any)"
    )
    q.add_argument(
        "--own-encoder",
        action="store_true",
        help="the expert grew on another encoder: keep it beside its decoder (run where the gate opens)",
    )
    q.add_argument(
        "--at",
        type=int,
        help="put the decoder in place of this expert's (its kind and gate kept): an expert "
        "trained on from extract-expert's copy",
    )
    q.set_defaults(func=cmd_add_expert)
    q = sub.add_parser(
        "extract-expert", help="one expert of a model as a model of its own, to train on"
    )
    q.add_argument("--ckpt", required=True, help="a model with experts")
    q.add_argument("--expert", type=int, required=True, help="which (0: the first)")
    q.add_argument("--out", required=True, help="the expert's decoder on its encoder")
    q.set_defaults(func=cmd_extract_expert)
    q = sub.add_parser("fit-gate", help="fit which photos take one of a model's experts")
    q.add_argument("--ckpt", required=True, help="a checkpoint written by add-expert")
    q.add_argument(
        "--expert",
        type=int,
        default=-1,
        help="which expert's gate to fit, the others' kept (default -1: the last added)",
    )
    _head_fit_args(q, "the gated checkpoint (+ a _gate.csv table); fit-tilt it afterwards")
    q.set_defaults(func=cmd_fit_head)
    q = sub.add_parser("export", help="ship a final.pt: fp16 weights + test metrics")
    q.add_argument("--ckpt", required=True, help="a final.pt written by train")
    q.add_argument("--out", required=True, help="e.g. weights/landscape.pt")
    q.add_argument("--metrics", help="summary.json from evaluate, to record test metrics")
    q.add_argument("--label", help="the model's name in that summary.json")
    q.add_argument("--fp32", action="store_true", help="keep fp32 weights")
    q.add_argument("--temperature", type=float, help="replace the tuned decoding temperature")
    q.add_argument("--why", default="", help="why the temperature was replaced (recorded)")
    q.set_defaults(func=cmd_export)
    q = sub.add_parser("graft", help="add hint branches trained on a frozen model to that model")
    q.add_argument("--base", required=True, help="the model the branches were trained on")
    q.add_argument("--hints", required=True, help="final.pt of a freeze_base hint run")
    q.add_argument("--out", required=True, help="e.g. weights/default.pt")
    q.set_defaults(func=cmd_graft)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from colorizer.checkpoint import CheckpointError

    try:
        return args.func(args)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as e:
        logging.getLogger("training").error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
