"""`musicgen evaluate --reference`: the table, JSON document and distribution plot of music/evaluation.py."""

from __future__ import annotations

import json

import numpy as np

from musicgen_tf.errors import MusicgenError
from musicgen_tf.music import evaluation


def _cell(summary) -> str:
    if isinstance(summary["mean"], list):
        return "(12-bin histogram)"
    return f"{summary['mean']:.3f} +- {summary['std']:.3f}"


def format_table(result: dict) -> str:
    """compare_sets(...) -> a fixed-width text table, one feature a line, then the mean OA."""
    header = (f"{'feature':<22}{'OA':>7}{'KLD':>8}{'OA gen':>8}{'mgeval':>8}   {'generated':<20}{'reference':<20}"
              f"{'intra ref':>10}{'inter':>8}")
    lines = [header, "-" * len(header)]
    for name, values in result["features"].items():
        kld = "inf" if not np.isfinite(values["kld"]) else f"{values['kld']:.3f}"
        lines.append(f"{name:<22}{values['oa']:>7.3f}{kld:>8}{values['oa_generated']:>8.3f}"
                     f"{values['oa_mgeval']:>8.3f}   "
                     f"{_cell(values['generated']):<20}{_cell(values['reference']):<20}"
                     f"{values['intra_reference']['mean']:>10.3f}{values['inter']['mean']:>8.3f}")
    lines.append("-" * len(header))
    lines.append(f"mean OA {result['mean_oa']:.3f}, lowest {result['min_oa']:.3f} "
                 f"({result['generated']['pieces']} generated vs {result['reference']['pieces']} reference pieces; "
                 "OA/KLD: reference intra-set vs inter-set distances, 1/0 = indistinguishable)")
    lines.append(f"mgeval: OA on [smallest, largest distance] only, as mgeval's code integrates (its mean "
                 f"{result['mean_oa_mgeval']:.3f}; comparable with papers that report mgeval's figures)")
    for name, reason in result["skipped_features"].items():
        lines.append(f"not compared: {name} ({reason})")
    for side in ("generated", "reference"):
        skipped = result[side]["skipped"]
        if skipped:
            lines.append(f"{len(skipped)} {side} files skipped, e.g. "
                         + "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3]))
    return "\n".join(lines)


def plot_distributions(result: dict, path) -> None:
    """PNG: per feature, the densities of the reference's and the generated set's intra-set distances and of the
    inter-set distances (the curves whose overlap is OA), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["features"])
    columns = 4
    rows = max(1, -(-len(names) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        values = result["features"][name]
        samples = values["_distances"]
        lo = min(float(s.min()) for s in samples.values())
        hi = max(float(s.max()) for s in samples.values())
        if hi <= lo:
            hi = lo + 1.0
        grid = np.linspace(lo, hi, 512)
        for key, label, colour in (("intra_reference", "reference intra", "tab:blue"),
                                   ("intra_generated", "generated intra", "tab:orange"),
                                   ("inter", "inter", "tab:green")):
            sample = samples[key]
            if np.ptp(sample) > 0:
                density = evaluation.kde_on_grid(sample, float(sample.min()), float(sample.max()), 2049)
                x = np.linspace(sample.min(), sample.max(), 2049)
                axis.plot(grid, np.interp(grid, x, density, left=0.0, right=0.0), label=label, color=colour)
            else:
                axis.axvline(sample[0], label=label, color=colour)
        axis.set_title(f"{name}  OA {values['oa']:.2f}", fontsize=10)
        axis.set_xlabel("Euclidean distance", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    if names:
        axes.flat[0].legend(fontsize=7)
    figure.suptitle(f"{result['generated']['folder']} vs {result['reference']['folder']}: mean OA "
                    f"{result['mean_oa']:.3f}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def evaluate_reference_command(generated_dir, reference_dir, json_out: bool = False, plot: str | None = None,
                               progress: bool = True) -> dict:
    """Compare two MIDI folders; print the table (or JSON), write the plot; returns the JSON-ready result."""
    try:
        result = evaluation.evaluate_folders(generated_dir, reference_dir, progress=progress and not json_out)
    except (FileNotFoundError, ValueError) as error:
        raise MusicgenError(str(error)) from None
    if not result["features"]:
        raise MusicgenError("no feature could be compared: " + "; ".join(
            f"{k}: {v}" for k, v in result["skipped_features"].items()))
    if plot:
        plot_distributions(result, plot)
    document = evaluation.json_ready(result)
    if json_out:
        print(json.dumps(document, indent=2))
    else:
        print(format_table(result))
        if plot:
            print(f"distributions: {plot}")
    return document


__all__ = ["format_table", "plot_distributions", "evaluate_reference_command"]
