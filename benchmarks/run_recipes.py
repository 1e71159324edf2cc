"""Train recipes on the real data and print the README's results table.

    python benchmarks/run_recipes.py --data-dir ../shared/datasets
    python benchmarks/run_recipes.py digits-mlp perceptron-3d
    python benchmarks/run_recipes.py alexnet-fashion --epochs 3

Each run's metrics go to ``benchmarks/results/<recipe>.json`` (and its checkpoint and
curves to ``runs/<recipe>``); the table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import xdl
from xdl import backends, recipes

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT = ["digits-mlp", "perceptron-3d", "softmax-spiral", "softmax-mnist", "mlp-mnist",
           "mlp-fashion", "lenet-mnist", "cnn-mnist", "cnn-bn-mnist", "cnn-fashion",
           "optimizers-compare", "rnn-curve", "lstm-hs300", "bigru-sentiment",
           "charrnn-shakespeare", "transformer-shakespeare", "seq2seq-dates", "seq2seq-en-fr",
           "gan-1d", "gan-2d", "ae-mnist", "vae-mnist", "gan-mnist",
           "wgan-mnist", "dcgan-mnist", "alexnet-fashion", "vgg-fashion", "nin-fashion",
           "inception-fashion", "resnet-fashion"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", default=DEFAULT)
    parser.add_argument("--data-dir", default=os.environ.get("XDL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int,
                        help="train every recipe this many epochs (default: each recipe's own)")
    parser.add_argument("--classifier", help="cnn-mnist checkpoint for the GAN recipes' "
                        "classifier score (default: runs/cnn-mnist/model.npz if present)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table from benchmarks/results without training")
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    rows = []
    for name in args.recipes:
        if args.table_only:
            with open(os.path.join(RESULTS, f"{name}.json"), encoding="utf-8") as stream:
                rows.append(json.load(stream))
            continue
        recipe = recipes.get(name)
        xdl.manual_seed(args.seed)
        config = recipes.RunConfig(backend=backends.current().name, seed=args.seed,
                                   epochs=args.epochs,
                                   data_dir=args.data_dir, out=os.path.join("runs", name),
                                   progress=False, classifier=_classifier(args))
        metrics = recipe.run(config, recipe.settings(config))
        with open(os.path.join(RESULTS, f"{name}.json"), "w", encoding="utf-8") as stream:
            json.dump(metrics, stream, indent=2)
        rows.append(metrics)
        print(f"{name}: done", file=sys.stderr)
    print("| recipe | result | epochs | train time | backend, machine |")
    print("|---|---|---|---|---|")
    for m in rows:
        print(f"| `{m['recipe']}` | {_result(m)} | {m['epochs_run']} | "
              f"{m['train_seconds']:.1f} s | {m.get('backend', 'numpy:cpu')}, {m['machine']} |")
    return 0


def _classifier(args) -> str | None:
    default = os.path.join("runs", "cnn-mnist", "model.npz")
    return args.classifier or (default if os.path.exists(default) else None)


def _result(metrics: dict) -> str:
    if metrics["recipe"] == "optimizers-compare":
        return "see the optimizer table below"
    if "test_exact_match" in metrics:
        return (f"{100 * metrics['test_exact_match']:.2f}% held-out exact match (greedy; "
                f"beam 3: {100 * metrics['test_exact_match_beam3']:.2f}%)")
    if "bleu" in metrics:
        return (f"validation cross-entropy {metrics['val_cross_entropy_nats']:.3f} nats/char, "
                f"BLEU {metrics['bleu']:.1f}")
    if "generated_score" in metrics:
        return (f"classifier score of 1,000 samples "
                f"{metrics['generated_score']['inception_score']:.2f} (real test images "
                f"{metrics['real_test_score']['inception_score']:.2f})")
    if "test_negative_elbo" in metrics:
        return (f"test −ELBO {metrics['test_negative_elbo']:.1f} nats/image (2-D latent: "
                f"{metrics['test_negative_elbo_2d_latent']:.1f})")
    if "test_mse_per_pixel" in metrics:
        return f"test MSE {metrics['test_mse_per_pixel']:.4f} per pixel"
    if "modes_covered" in metrics and metrics["modes"] > 1:
        return (f"{metrics['modes_covered']}/{metrics['modes']} modes covered, "
                f"{100 * metrics['high_quality_share']:.1f}% of samples within 3σ of a mode")
    if "generated_std" in metrics:
        return (f"generated mean {metrics['generated_mean']:.2f}, std "
                f"{metrics['generated_std']:.2f} (real 4.00, 1.25)")
    if "val_cross_entropy_nats" in metrics:
        return f"validation cross-entropy {metrics['val_cross_entropy_nats']:.3f} nats/char"
    if "naive_rmse" in metrics:
        verdict = "beats" if metrics["beats_naive"] else "does not beat"
        return (f"test RMSE {metrics['test_rmse']:.1f}, MAPE {metrics['test_mape']:.2f}% — "
                f"{verdict} 'tomorrow = today' (RMSE {metrics['naive_rmse']:.1f}, MAPE "
                f"{metrics['naive_mape']:.2f}%)")
    if "test_mse" in metrics:
        return (f"test MSE {metrics['test_mse']:.5f} (noise variance "
                f"{metrics['noise_variance']:.4f})")
    if "train_accuracy" in metrics:
        return f"{100 * metrics['train_accuracy']:.1f}% training accuracy"
    text = f"{100 * metrics['test_accuracy']:.2f}% test accuracy"
    if "mlp_test_accuracy" in metrics:
        text += f" (MLP 2-100-3: {100 * metrics['mlp_test_accuracy']:.2f}%)"
    return text


if __name__ == "__main__":
    sys.exit(main())
