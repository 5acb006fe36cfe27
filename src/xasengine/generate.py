"""`xasengine generate`: candidate coordination shells for a measured or simulated spectrum, as XYZ files.

Inputs are read and processed exactly as `xasengine predict` reads them (same calibration, normalisation, grid and
one-line errors); each spectrum gets n samples from the diffusion model, written as one plain XYZ per sample and one
extended XYZ holding them all with species and the absorber marked.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from .atomic import write_text
from .environments import species_symbols
from .errors import PredictError
from .predict import gathered_items


def _stem(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(source)).name if ":" not in str(source) else str(source))[-80:]


def xyz_text(absorber: str, species, offsets, comment: str) -> str:
    atoms = [(absorber, np.zeros(3))] + [(s, p) for s, p in zip(species_symbols(species), offsets[species > 0])]
    lines = [str(len(atoms)), comment]
    lines += [f"{s:<2} {p[0]:12.6f} {p[1]:12.6f} {p[2]:12.6f}" for s, p in atoms]
    return "\n".join(lines) + "\n"


def extxyz_frame(absorber: str, species, offsets, comment: str) -> str:
    atoms = [(absorber, np.zeros(3), "T")] + [(s, p, "F") for s, p in zip(species_symbols(species),
                                                                         offsets[species > 0])]
    header = f'Properties=species:S:1:pos:R:3:absorber:L:1 pbc="F F F" comment="{comment}"'
    lines = [str(len(atoms)), header]
    lines += [f"{s:<2} {p[0]:12.6f} {p[1]:12.6f} {p[2]:12.6f} {a}" for s, p, a in atoms]
    return "\n".join(lines) + "\n"


SPT_FILE = "spt-joint-nonO.pt"  # the joint SPT the workflow trains beside diffusion.pt


def requested_cn(args, items: list[dict]) -> tuple[list, str]:
    """Per spectrum the CN its shells are asked for, and where it came from: --cn, else the joint SPT's CN
    (--spt or the one beside --model), else None (spectrum alone), as the diffusion report's headline does."""
    if args.no_cn:
        return [None] * len(items), "none asked"
    if args.cn is not None:
        if args.cn < 0:
            raise PredictError(f"--cn must be a non-negative integer, got {args.cn}")
        return [args.cn] * len(items), "--cn"
    path = Path(args.spt) if args.spt else Path(args.model).parent / SPT_FILE
    if not path.is_file():
        if args.spt:
            raise PredictError(f"no SPT checkpoint at {args.spt}")
        return [None] * len(items), "none asked (no joint SPT beside the model)"
    from .errors import XasEngineError
    from .models.family import predicted_cn

    try:
        cn = predicted_cn(path, [it["spectrum"] for it in items], [it["element"] for it in items])
    except XasEngineError as exc:
        raise PredictError(str(exc)) from exc
    if cn is None:
        return [None] * len(items), "none asked (the SPT has no CN head)"
    return [float(c) for c in cn], f"joint SPT {path}"


def generate_cli(args) -> int:
    """Writes <out>/<input>-sampleNN.xyz and <out>/<input>.extxyz; 1 if any input failed (each named)."""
    from pymatgen.core import Element

    from .models.diffusion import load_diffusion

    if args.n_samples < 1:
        raise PredictError(f"--n-samples must be at least 1, got {args.n_samples}")
    model, meta = load_diffusion(args.model)
    grid_len = model.denoiser.spectrum[0].in_features
    absorbers = set(meta.get("elements") or [Element.from_Z(z).symbol for z in model.species_z])
    items, failed = gathered_items(args, grid_len)
    failures = [row["reason"] for row in failed]
    out = Path(args.out)
    written = 0
    for item in [it for it in items if it["element"] not in absorbers]:
        failures.append(f"{item['source']}: the diffusion model was trained on absorbers {sorted(absorbers)}, "
                        f"not {item['element']}")
    items = [it for it in items if it["element"] in absorbers]
    cns, cn_source = requested_cn(args, items)
    for item, cn in zip(items, cns):
        k = int(meta.get("k_neighbors", 12))
        species, offsets = model.sample(np.asarray(item["spectrum"], np.float32)[None],
                                        np.array([Element(item["element"]).Z]), k, args.n_samples, seed=args.seed,
                                        first_shell_counts=None if cn is None else [cn])
        stem = _stem(item["source"])
        frames = []
        asked = f"CN asked {cn:g} ({cn_source})" if cn is not None else f"CN {cn_source}"
        if model.uses_head_bond():
            bond = float(model.head_bond_length(np.asarray(item["spectrum"], np.float32)[None])[0])
            asked += f"; first-shell O scaled to the model's bond reading {bond:.3f} A"
        for j in range(args.n_samples):
            comment = (f"xasengine generate: {item['source']} sample {j} absorber {item['element']} at origin; "
                       f"{asked}")
            write_text(out / f"{stem}-sample{j:02d}.xyz", xyz_text(item["element"], species[0, j], offsets[0, j],
                                                                    comment))
            frames.append(extxyz_frame(item["element"], species[0, j], offsets[0, j], comment))
        write_text(out / f"{stem}.extxyz", "".join(frames))
        written += 1
        print(f"{item['source']}: {args.n_samples} shells -> {out / stem}.extxyz")
    for line in failures:
        print(f"xasengine: error [generate]: {line}", file=sys.stderr)
    if not written and not failures:
        raise PredictError("no spectra found in the inputs")
    return 1 if failures else 0
