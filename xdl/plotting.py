"""Training curves as PNG, when matplotlib is installed (``pip install 'xdl[plot]'``)."""

from __future__ import annotations


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    """matplotlib.pyplot drawing off screen (Agg), or None without matplotlib."""
    if not have_matplotlib():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict, path: str, title: str = "") -> str | None:
    """Loss and accuracy per epoch (train and validation) into ``path``; None without
    matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None

    panels = [key for key in ("loss", "accuracy") if key in history]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, key in zip(axes[0], panels):
        epochs = range(1, len(history[key]) + 1)
        axis.plot(epochs, history[key], label=f"train {key}")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path, title)


def plot_comparison(runs: dict, path: str, title: str = "") -> str | None:
    """Per-iteration training loss and per-epoch validation accuracy of several runs
    (``{label: {"lr": ..., "batch_loss": [...], "val_accuracy": [...]}}``) in one figure."""
    plt = _pyplot()
    if plt is None:
        return None

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in runs.items():
        name = f"{label} (lr {run['lr']:g})"
        loss_axis.plot(range(1, len(run["batch_loss"]) + 1), run["batch_loss"], label=name,
                       linewidth=0.8)
        accuracy_axis.plot(range(1, len(run["val_accuracy"]) + 1), run["val_accuracy"],
                           marker="o", label=name)
    loss_axis.set_xlabel("iteration")
    loss_axis.set_ylabel("training loss")
    loss_axis.set_yscale("log")
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.set_ylabel("validation accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
    accuracy_axis.legend(fontsize=7)
    return _save(figure, path, title)


def plot_prediction(actual, predicted, baseline, path: str, title: str = "") -> str | None:
    """A time series against its prediction and a baseline, over the test period."""
    plt = _pyplot()
    if plt is None:
        return None

    figure, axis = plt.subplots(figsize=(10, 4))
    days = range(len(actual))
    axis.plot(days, actual, label="actual", linewidth=1.2)
    axis.plot(days, predicted, label="prediction", linewidth=1.0)
    axis.plot(days, baseline, label="tomorrow = today", linewidth=0.8, alpha=0.7)
    axis.set_xlabel("test day")
    axis.set_ylabel("close")
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path, title)


def plot_samples_2d(real, generated, centres, path: str, title: str = "") -> str | None:
    """Real and generated 2-D points (and the mode centres) in one scatter plot."""
    plt = _pyplot()
    if plt is None:
        return None

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(real[:, 0], real[:, 1], s=3, alpha=0.3, label="real")
    axis.scatter(generated[:, 0], generated[:, 1], s=3, alpha=0.3, label="generated")
    axis.scatter(centres[:, 0], centres[:, 1], marker="x", color="black", label="modes")
    axis.set_aspect("equal")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", fontsize=8)
    return _save(figure, path, title)


def plot_histograms_1d(real, generated, path: str, title: str = "") -> str | None:
    """Histograms of real and generated 1-D samples on shared bins."""
    plt = _pyplot()
    if plt is None:
        return None

    figure, axis = plt.subplots(figsize=(6, 3.6))
    bins = 60
    axis.hist(real, bins=bins, density=True, alpha=0.5, label="real")
    axis.hist(generated, bins=bins, density=True, alpha=0.5, label="generated")
    axis.set_xlabel("x")
    axis.set_ylabel("density")
    axis.legend()
    return _save(figure, path, title)


def plot_attention(weights, source: list[str], target: list[str], path: str,
                   title: str = "") -> str | None:
    """Heat-map of attention weights (len(target), len(source)): row t is where the
    decoder looked while writing target[t]; None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, axis = plt.subplots(figsize=(0.3 * len(source) + 2.0, 0.3 * len(target) + 1.5))
    image = axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
    axis.set_xticks(range(len(source)), [repr(s)[1:-1] for s in source])
    axis.set_yticks(range(len(target)), [repr(t)[1:-1] for t in target])
    axis.set_xlabel("source")
    axis.set_ylabel("output")
    figure.colorbar(image, ax=axis)
    return _save(figure, path, title)


def _save(figure, path: str, title: str) -> str:
    import matplotlib.pyplot as plt

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
