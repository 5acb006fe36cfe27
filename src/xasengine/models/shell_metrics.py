"""How close a generated coordination shell is to the true one: first-shell bond length, CN from a bond cutoff,
bond-angle distribution distance and matched RMSD (species-wise assignment, best rotation or mirror about the
absorber). Shared by the diffusion evaluation and its baselines, so every method is scored by one code path."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

OXYGEN = 8
_MISMATCH_PENALTY = 1.0e3  # Å², larger than any distance: same species are paired first


def first_shell_mask(species: np.ndarray, offsets: np.ndarray, cutoff: float, ligand: int = OXYGEN) -> np.ndarray:
    """(..., K) True for the ligand atoms within the bond cutoff (absorber at the origin; NaN padding never is),
    for one shell or a batch of them: the one definition of the first shell that CN, bond and sampling share."""
    return (species == ligand) & (np.linalg.norm(np.nan_to_num(offsets, nan=1e9), axis=-1) <= cutoff)


def first_shell(species: np.ndarray, offsets: np.ndarray, cutoff: float, ligand: int = OXYGEN) -> np.ndarray:
    """Offsets of the ligand atoms within the bond cutoff (the absorber at the origin)."""
    return offsets[first_shell_mask(species, offsets, cutoff, ligand)]


def bond_angles(shell: np.ndarray) -> np.ndarray:
    """Ligand-absorber-ligand angles (degrees) of every pair in the first shell."""
    if len(shell) < 2:
        return np.empty(0)
    unit = shell / np.linalg.norm(shell, axis=1, keepdims=True)
    i, j = np.triu_indices(len(shell), 1)
    return np.degrees(np.arccos(np.clip((unit[i] * unit[j]).sum(1), -1.0, 1.0)))


def orthogonal_alignment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal R (rotation or rotation-reflection) minimising |a R - b|: no centring, the absorber is fixed."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt


def matched_rmsd(species_a, offsets_a, species_b, offsets_b, n_starts: int = 4, iterations: int = 8,
                 seed: int = 0) -> float:
    """RMSD (Å) between two shells of equal size after the best species-wise assignment and orthogonal alignment
    about the origin, alternating Hungarian assignment and Procrustes from a few starting orientations."""
    ok_a, ok_b = species_a > 0, species_b > 0
    sa, pa, sb, pb = species_a[ok_a], offsets_a[ok_a], species_b[ok_b], offsets_b[ok_b]
    n = min(len(pa), len(pb))
    if n == 0:
        return float("nan")
    mismatch = _MISMATCH_PENALTY * (sa[:, None] != sb[None, :])
    rng = np.random.default_rng(seed)
    # a rotation-invariant first assignment (radial distances), then random orientations
    ra, rb = np.linalg.norm(pa, axis=1), np.linalg.norm(pb, axis=1)
    rows, cols = linear_sum_assignment((ra[:, None] - rb[None, :]) ** 2 + mismatch)
    starts = [orthogonal_alignment(pa[rows], pb[cols])]
    for _ in range(n_starts - 1):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        starts.append(q)
    best = np.inf
    for rot in starts:
        for _ in range(iterations):
            moved = pa @ rot
            d2 = ((moved[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
            rows, cols = linear_sum_assignment(d2 + mismatch)
            new_rot = orthogonal_alignment(pa[rows], pb[cols])
            if np.allclose(new_rot, rot, atol=1e-9):
                break
            rot = new_rot
        moved = pa @ rot
        d2 = ((moved[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(d2 + mismatch)
        best = min(best, float(np.sqrt(d2[rows, cols].mean())))
    return best


def shell_scores(gen_species, gen_offsets, true_species, true_offsets, cutoff: float) -> dict:
    """Per-shell scores of one generated shell against the truth."""
    gen_first = first_shell(gen_species, gen_offsets, cutoff)
    true_first = first_shell(true_species, true_offsets, cutoff)
    cn_gen, cn_true = len(gen_first), len(true_first)
    bond_gen = float(np.linalg.norm(gen_first, axis=1).mean()) if cn_gen else np.nan
    bond_true = float(np.linalg.norm(true_first, axis=1).mean()) if cn_true else np.nan
    angles_gen, angles_true = bond_angles(gen_first), bond_angles(true_first)
    angle_w1 = (float(wasserstein_distance(angles_gen, angles_true)) if len(angles_gen) and len(angles_true)
                else np.nan)
    return {
        "cn_true": cn_true,
        "cn_pred": cn_gen,
        "cn_exact": float(cn_gen == cn_true),
        "cn_rel_error": abs(cn_gen - cn_true) / cn_true if cn_true else np.nan,
        "bond_true": bond_true,
        "bond_pred": bond_gen,
        "bond_error": abs(bond_gen - bond_true) if cn_gen and cn_true else np.nan,
        "angle_w1": angle_w1,
        "rmsd": matched_rmsd(gen_species, gen_offsets, true_species, true_offsets),
        "species_match": _species_overlap(gen_species, true_species),
    }


def _species_overlap(a, b) -> float:
    """Fraction of the K neighbours whose species counts agree (multiset overlap)."""
    a, b = a[a > 0], b[b > 0]
    if not len(b):
        return np.nan
    values = np.union1d(a, b)
    return float(sum(min((a == v).sum(), (b == v).sum()) for v in values) / len(b))


SCORE_KEYS = ("bond_error", "cn_rel_error", "cn_exact", "angle_w1", "rmsd", "species_match")


def summarise(rows: list[dict]) -> dict:
    """Mean of each score over sites (NaN-aware) plus how many sites counted."""
    out = {"n": len(rows)}
    for key in SCORE_KEYS:
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else None
    return out
