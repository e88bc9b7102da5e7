"""Figures of the cluster summary: the 2-D map of sampled documents, and shares per bin."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA


class FittedClusters(Protocol):
    """What the map needs of a fitted cluster model (data.clustering.ClusterModel): features,
    the k-means fit, and the text-to-feature transform. Named here so that plots never import
    the clustering job."""

    features: str
    kmeans: Any

    def transform(self, texts: list[str]) -> Any: ...


def spread(y: np.ndarray, gap: float) -> np.ndarray:
    """Label heights at least `gap` apart, each as near its own point as the order allows."""
    order = np.argsort(y, kind="stable")
    placed = y[order].astype(float)
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    # Centre the pushed stack on the original points so labels do not all drift upwards.
    placed -= (placed - y[order]).mean()
    result = np.empty_like(placed)
    result[order] = placed
    return result


def plot_map(model: FittedClusters, texts: list[str], labels: list[str], seed: int) -> Any:
    """A 2-D PCA map of sampled documents coloured by cluster, centroids labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = model.transform(texts)
    clusters = model.kmeans.predict(matrix)
    # PCA centres the data (implicitly for sparse TF-IDF); without centring the first component of
    # an SVD mostly measures document length and the clusters pile up along it.
    pca = PCA(n_components=2, svd_solver="arpack", random_state=seed).fit(matrix)
    points = pca.transform(matrix)
    centres = pca.transform(model.kmeans.cluster_centers_)
    colours = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(11, 7))
    width = float(np.ptp(points[:, 0])) if len(points) else 1.0
    height = float(np.ptp(points[:, 1])) if len(points) else 1.0
    # Labels stand in a column right of the documents, each joined to its centroid by a line:
    # placed at the centroids they piled on the dense core, where most centroids sit.
    label_x = (points[:, 0].max() if len(points) else 0.0) + 0.08 * width
    label_y = spread(centres[:, 1], max(0.045 * height, height / max(len(labels), 1) * 0.9))
    for cluster, label in enumerate(labels):
        mask = clusters == cluster
        ax.scatter(*points[mask].T, s=6, alpha=0.5, color=colours(cluster % 20), label=label)
        ax.annotate(
            label, centres[cluster], xytext=(label_x, label_y[cluster]),
            fontsize=8, weight="bold", ha="left", va="center", annotation_clip=False,
            bbox={"boxstyle": "round", "fc": "white", "ec": colours(cluster % 20), "alpha": 0.85},
            arrowprops={"arrowstyle": "-", "color": "0.3", "lw": 0.8},
        )  # fmt: skip
        ax.plot(*centres[cluster], marker="x", color="black", markersize=6)
    fig.subplots_adjust(right=0.72)  # room for the label column beside the axes
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(f"{len(texts)} sampled documents in {len(labels)} clusters ({model.features})")
    ax.legend(fontsize=7, markerscale=3, loc="best")
    ax.set_xlim(right=label_x)  # the labels begin where the axes end
    return fig


def plot_shares(shares: pd.DataFrame, labels: list[str], axis_label: str) -> Any:
    """Cluster shares per bin: stacked areas for a numeric column, stacked bars otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = shares.pivot_table(index="bin", columns="cluster", values="share", fill_value=0.0)
    wide = wide.reindex(columns=range(len(labels)), fill_value=0.0)
    wide.columns = labels
    colours = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(10, 5))
    numeric = pd.api.types.is_numeric_dtype(wide.index) and len(wide) > 2
    if numeric:
        ax.stackplot(wide.index.astype(float), wide.T.to_numpy(), labels=labels,
                     colors=[colours(i % 20) for i in range(len(labels))])  # fmt: skip
        ax.set_xlim(float(wide.index.min()), float(wide.index.max()))
    else:
        wide.index = wide.index.astype(str)
        wide.plot.bar(stacked=True, ax=ax, color=[colours(i % 20) for i in range(len(labels))])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of documents")
    ax.set_xlabel(axis_label)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig
