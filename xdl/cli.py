"""The ``xdl`` command: ``xdl train [RECIPE]``, ``xdl recipes``, ``xdl info``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

DEFAULT_RECIPE = "digits-mlp"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdl", description="Deep learning from scratch.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a recipe (default: digits-mlp)")
    train.add_argument("recipe", nargs="?", default=DEFAULT_RECIPE)
    train.add_argument("--backend", help="numpy, torch, array_api_strict or cupy "
                       "(default: $XDL_BACKEND or numpy)")
    train.add_argument("--device", help="device of the backend (e.g. 0 for CUDA)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data-dir", help="folder holding mnist/, fashion-mnist/, ... "
                       "(default: $XDL_DATA_DIR, ~/.cache/xdl, system folders)")
    train.add_argument("--out", help="output folder (default: runs/RECIPE)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--classifier", help="a cnn-mnist checkpoint (model.npz) for the "
                       "GAN recipes' classifier score (default: train one for 2 epochs)")
    train.add_argument("--resume", help="continue from a checkpoint (model.npz) this "
                       "recipe wrote; --epochs is the total (recipes that support it)")
    commands.add_parser("recipes", help="list the recipes and the chapter each follows")
    commands.add_parser("info", help="backends installed, devices visible, versions")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "recipes": _recipes, "info": _info}[args.command](args)
    except Exception as exc:  # one clear line instead of a traceback
        if os.environ.get("XDL_DEBUG"):
            raise
        print(f"xdl {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _train(args) -> int:
    import xdl
    from xdl import backends, recipes

    recipe = recipes.get(args.recipe)
    if args.resume and not recipe.resumable:
        can = ", ".join(r.name for r in recipes.all_recipes() if r.resumable)
        raise ValueError(f"recipe {recipe.name} cannot --resume (it keeps no per-epoch "
                         f"checkpoint); these can: {can}")
    if args.backend or args.device:
        backends.set_backend(args.backend or backends.current().name, args.device)
    backend = backends.current()
    xdl.manual_seed(args.seed)
    config = recipes.RunConfig(
        backend=backend.name, device=args.device, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        data_dir=args.data_dir, out=args.out or os.path.join("runs", recipe.name),
        progress=not args.no_progress, classifier=args.classifier,
        resume=args.resume,
    )
    settings = recipe.settings(config)
    print(f"xdl train {recipe.name} on {backend} with {settings}", file=sys.stderr)
    metrics = recipe.run(config, settings)
    summary = {k: v for k, v in metrics.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


def _recipes(args) -> int:
    from xdl import recipes

    for recipe in recipes.all_recipes():
        print(f"{recipe.name:16s} {recipe.chapter}\n{'':16s} {recipe.summary}")
    return 0


def _info(args) -> int:
    import array_api_compat
    import numpy

    import xdl
    from xdl import backends

    print(f"xdl {xdl.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPU cores")
    print(f"numpy {numpy.__version__}, array-api-compat {array_api_compat.__version__}")
    print(f"current backend: {backends.current()}")
    for name in backends.BACKEND_NAMES:
        reason = backends.unavailable_reason(name)
        if reason is None:
            backend = backends.get(name)
            print(f"  {name:17s} ok      {_version(name)} device {backend.device}")
        else:
            print(f"  {name:17s} missing {reason}")
    return 0


def _version(name: str) -> str:
    module = sys.modules.get(name)
    return getattr(module, "__version__", "") if module else ""


if __name__ == "__main__":
    sys.exit(main())
