"""2-D UMAP maps of the gridded spectra and of the joint SPT's latent space, coloured by absorber and by each
descriptor (the paper's Figure 8): whether sites that share a descriptor value sit together before and after
the model has learnt to read the spectrum."""

from __future__ import annotations

import time

import numpy as np

from ..atomic import write_json
from ..errors import ReportError
from ..evaluate import latent_vectors
from ..models.family import load_model
from ..models.targets import group_mask
from .figures import pyplot, save_png


def spt_latent(model, spectra: np.ndarray, energy: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """The joint SPT's shared latent vector (what every head reads) for each spectrum."""
    return latent_vectors(model.state, model.extra["meta"], spectra, energy, elements)


def embed_2d(features: np.ndarray, cfg: dict) -> np.ndarray:
    import umap

    n_neighbors = min(cfg["n_neighbors"], len(features) - 1)
    if n_neighbors < 2:
        raise ReportError(f"UMAP needs at least 3 sites, got {len(features)}")
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=cfg["min_dist"], random_state=cfg["seed"], n_jobs=1,
                        init="spectral" if len(features) > n_neighbors + 2 else "random")
    return reducer.fit_transform(np.asarray(features, dtype=np.float32))


def group_embeddings(table: dict, checkpoint: str, cfg: dict) -> dict:
    """Both embeddings of one site group (all splits, absorbers the model was trained on) and their cost."""
    model = load_model(checkpoint)
    rows = group_mask(table["element"], model.group) & np.isin(np.asarray(table["element"]).astype(str),
                                                                model.elements)
    spectra = np.asarray(table["spectrum"], dtype=np.float32)[rows]
    energy = np.asarray(table["energy"], dtype=np.float32)[rows]
    elements = np.asarray(table["element"]).astype(str)[rows]
    seconds = {}
    started = time.perf_counter()
    raw = embed_2d(spectra, cfg)
    seconds["umap_raw"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    latent = spt_latent(model, spectra, energy, elements)
    seconds["spt_latent"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    latent_2d = embed_2d(latent, cfg)
    seconds["umap_latent"] = round(time.perf_counter() - started, 2)
    labels = {spec.name: np.asarray(table["descriptors"][spec.name], dtype=np.float64)[rows]
              for spec in model.specs}
    kinds = {spec.name: spec.kind for spec in model.specs}
    return {"group": model.group, "raw": raw, "latent": latent_2d, "elements": elements, "labels": labels,
            "kinds": kinds, "n_sites": int(rows.sum()), "latent_dim": int(latent.shape[1]), "seconds": seconds}


def _scatter(ax, xy: np.ndarray, values: np.ndarray, kind: str, fig) -> None:
    known = np.isfinite(values) if kind != "element" else np.ones(len(values), bool)
    if not known.all():
        ax.scatter(*xy[~known].T, s=4, color="lightgrey", label="no label")
    if kind == "regression":
        points = ax.scatter(*xy[known].T, s=5, c=values[known], cmap="viridis")
        fig.colorbar(points, ax=ax, fraction=0.046, pad=0.02)
    else:
        classes = sorted(set(values[known].tolist()))
        cmap = pyplot().get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, value in enumerate(classes):
            chosen = known & (values == value)
            text = value if kind == "element" else f"{value:g}"
            ax.scatter(*xy[chosen].T, s=5, color=cmap(i % cmap.N), label=text)
        if len(classes) <= 12:
            ax.legend(fontsize=6, markerscale=2.5, loc="best", framealpha=0.7)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_group(embedding: dict, path: str, cols: int = 4) -> None:
    """Top block: raw spectra, bottom block: SPT latent space; panels: absorber, then each descriptor."""
    plt = pyplot()
    columns = [("absorber", embedding["elements"], "element")]
    columns += [(name, values, embedding["kinds"][name]) for name, values in embedding["labels"].items()]
    block = (len(columns) + cols - 1) // cols
    fig, axes = plt.subplots(2 * block, cols, figsize=(3.6 * cols, 3.3 * 2 * block), squeeze=False)
    for b, (key, title) in enumerate((("raw", "gridded spectra"), ("latent", "SPT latent"))):
        for c, (name, values, kind) in enumerate(columns):
            ax = axes[b * block + c // cols, c % cols]
            _scatter(ax, embedding[key], values, kind, fig)
            ax.set_title(f"{title}: {name}", fontsize=10)
            ax.set_xlabel("UMAP 1", fontsize=8)
            ax.set_ylabel("UMAP 2", fontsize=8)
        for c in range(len(columns), block * cols):
            axes[b * block + c // cols, c % cols].axis("off")
    fig.suptitle(f"{embedding['group']} sites ({embedding['n_sites']}): UMAP of the gridded spectra (top) and of "
                 f"the joint SPT's {embedding['latent_dim']}-d latent vector (bottom)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save_png(fig, path)


def write_umap(shards: list[str], checkpoint: str, cfg: dict, outputs: dict) -> dict:
    """outputs: figure (PNG), json (coordinates and cost)."""
    from ..shards import read_shards

    started = time.perf_counter()
    embedding = group_embeddings(read_shards(shards, only_ok=True), checkpoint, cfg)
    plot_group(embedding, outputs["figure"])
    embedding["seconds"]["total"] = round(time.perf_counter() - started, 2)
    write_json(outputs["json"], {k: embedding[k] for k in ("group", "n_sites", "latent_dim", "seconds")}
               | {"cfg": cfg, "raw": embedding["raw"].round(4).tolist(), "latent": embedding["latent"].round(4).tolist(),
                  "elements": embedding["elements"].tolist()})
    return embedding
