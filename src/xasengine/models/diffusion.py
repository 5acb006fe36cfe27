"""Equivariant diffusion over the coordination shell of an absorbing site, conditioned on its spectrum.

The absorber sits fixed at the origin; its K neighbours carry noisy positions (1o vectors) and noisy one-hot
species (scalars, EDM-style). A NequIP-style stack of e3nn convolutions over the fully connected neighbour graph
predicts the noise on both, so the model is equivariant under rotations and reflections about the absorber and under
permutations of the neighbours. The spectrum enters as one invariant embedding added to every node; it is replaced
by a learned null embedding on a fraction of training steps, which gives classifier-free guidance at sampling time.
"""

from __future__ import annotations

import copy
import json
import math
import time

import numpy as np
import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn
from tqdm import tqdm

from ..errors import ModelError
from .shell_metrics import OXYGEN, first_shell_mask
from .versions import DIFFUSION_MODEL_VERSION

DEFAULTS = {
    "hidden_scalars": 32,      # 0e channels per node
    "hidden_vectors": 8,       # 1o and 1e channels per node
    "layers": 3,                # 4 layers cost 2x the time per step of 3 (0.33 vs 0.17 s at batch 64, 1 thread)
    "lmax": 2,                 # spherical harmonics of the edge directions
    "radial_basis": 16,
    "cond_dim": 64,
    "timesteps": 500,          # discrete diffusion steps of the cosine schedule
    "position_scale": 2.0,     # Å per unit: shells of 2-4 Å have unit-scale coordinates
    "species_scale": 0.25,     # one-hot scale (EDM): species settle late, after the geometry
    "cond_drop": 0.15,         # fraction of training steps without the spectrum (classifier-free guidance)
    "epochs": 300,
    "batch_size": 64,
    "lr": 2e-3,
    "weight_decay": 1e-6,
    "ema": 0.995,
    "seed": 0,
    "sample_steps": 100,       # strided reverse steps at sampling time
    "eta": 1.0,                # 1 = ancestral (stochastic) sampling, 0 = deterministic DDIM
    "clip_radius": 0.0,        # Å: >0 keeps each denoised neighbour estimate within this ball (rotation-equivariant);
                               # 0 clips each coordinate to +-4 units (8 Å). The DAG sets it to diffusion.radius
    "head_bond": True,         # at sampling, scale each shell's first-shell O about the absorber to the mean bond the
                               # auxiliary head reads from the spectrum (val bond error 0.073 -> 0.012 Å; needs the head)
    "cn_retries": 2,           # at sampling, a shell asked for a CN that misses it is drawn again up to this many times
                               # (val, oracle CN: CN exact 0.891 -> 1.000 for +5 % sampling time; 4 gave the same)
    "guidance": 0.0,           # w in (1+w)·eps(spectrum) - w·eps(null); 0 chosen on validation (benchmarks/README)
    "first_shell_cutoff": 2.6,  # Å: O neighbours within it are the labelled first-shell nodes (= diffusion.bond_cutoff)
    "label_drop": 0.15,        # fraction of training steps with the first-shell labels hidden (sampling without a CN)
    "invariant_weight": 1.0,   # >0: the spectrum embedding also regresses the shell's sorted neighbour distances, mean
                               # bond and CN (an auxiliary head, unused at sampling), so it learns what the shell is;
                               # 1 chosen on validation (benchmarks/README.md, "Training recipes"), 0 turns it off
    "low_noise_power": 1.0,    # training steps drawn as T·u^p: 1 uniform, >1 more steps at low noise (bond precision)
}
MODEL_VERSION = DIFFUSION_MODEL_VERSION


def cosine_alpha_bar(timesteps: int) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, alpha_bar(0) = 1 ... alpha_bar(T) ~ 0, clipped away from 0."""
    s = 0.008
    t = torch.linspace(0, 1, timesteps + 1, dtype=torch.float64)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = (f / f[0]).clamp(min=1e-5)
    # keep per-step betas below 0.999 as usual
    ratios = (alpha_bar[1:] / alpha_bar[:-1]).clamp(min=1e-3)
    return torch.cat([alpha_bar[:1], torch.cumprod(ratios, 0)]).float()


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    args = t[:, None] * freqs[None] * 1000.0
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class EquivariantConv(nn.Module):
    """One NequIP-style interaction: a uvu tensor product of neighbour features with the edge's spherical harmonics,
    weighted per edge by an MLP of its length, summed over neighbours, then a gated equivariant nonlinearity."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, scalars: int, vectors: int, radial_basis: int):
        super().__init__()
        self.gate = Gate(f"{scalars}x0e", [nn.functional.silu], f"{2 * vectors}x0e", [torch.sigmoid],
                         f"{vectors}x1o + {vectors}x1e")
        wanted = {ir for _, ir in self.gate.irreps_in}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_edge) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_edge:
                    if ir_out in wanted:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        mid = o3.Irreps(mid)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, mid, instructions, shared_weights=False,
                                   internal_weights=False)
        self.radial = nn.Sequential(nn.Linear(radial_basis, 64), nn.SiLU(), nn.Linear(64, self.tp.weight_numel))
        self.after = o3.Linear(mid, self.gate.irreps_in)
        self.self_connection = o3.Linear(irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out

    def forward(self, x, sh, radial, pair_mask):
        b, n, _ = x.shape
        x_j = x[:, None, :, :].expand(b, n, n, x.shape[-1])
        messages = self.tp(x_j.reshape(b * n * n, -1), sh.reshape(b * n * n, -1),
                           self.radial(radial).reshape(b * n * n, -1)).reshape(b, n, n, -1)
        messages = (messages * pair_mask[..., None]).sum(2) / math.sqrt(max(n - 1, 1))
        return self.gate(self.after(messages) + self.self_connection(x))


class ShellDenoiser(nn.Module):
    """Predicts (position noise, species noise) of every node from the noisy shell, the step, the spectrum and
    each node's first-shell label (+1 a bond of the shell, -1 not, 0 unknown): the label is an invariant scalar, so
    asking for a CN keeps the model equivariant, and it fixes the atom count the spectrum alone did not
    (benchmarks/README.md, issue 15)."""

    def __init__(self, n_species: int, grid_len: int, cfg: dict, n_invariants: int = 0):
        super().__init__()
        f, v = cfg["hidden_scalars"], cfg["hidden_vectors"]
        self.n_species, self.radial_basis = n_species, cfg["radial_basis"]
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg["lmax"])
        self.embed = nn.Linear(n_species + 2, f)  # species (noisy for neighbours) + absorber flag + shell label
        self.time = nn.Sequential(nn.Linear(32, f), nn.SiLU(), nn.Linear(f, f))
        self.spectrum = nn.Sequential(nn.Linear(grid_len, cfg["cond_dim"]), nn.SiLU(),
                                      nn.Linear(cfg["cond_dim"], cfg["cond_dim"]), nn.SiLU(), nn.Linear(cfg["cond_dim"], f))
        self.null_condition = nn.Parameter(torch.zeros(f))
        irreps = o3.Irreps(f"{f}x0e")
        self.layers = nn.ModuleList()
        for _ in range(cfg["layers"]):
            layer = EquivariantConv(irreps, self.irreps_sh, f, v, cfg["radial_basis"])
            self.layers.append(layer)
            irreps = layer.irreps_out
        self.head = o3.Linear(irreps, f"1x1o + {n_species}x0e")
        self.register_buffer("centers", torch.linspace(0.0, 4.0, cfg["radial_basis"]))
        # only built when trained, so checkpoints of the default recipe keep their keys
        self.invariants = (nn.Sequential(nn.Linear(f, cfg["cond_dim"]), nn.SiLU(), nn.Linear(cfg["cond_dim"], n_invariants))
                           if cfg.get("invariant_weight", 0.0) > 0 else None)

    def forward(self, pos, h, t, spectrum, node_mask, drop_condition, shell=None):
        """pos (B,N,3), h (B,N,S), t (B,) in [0,1], spectrum (B,G), node_mask (B,N) bool, drop_condition (B,) bool,
        shell (B,N) first-shell labels or None (all unknown). Node 0 is the absorber."""
        b, n, _ = pos.shape
        flag = torch.zeros(b, n, 1, dtype=pos.dtype, device=pos.device)
        flag[:, 0] = 1.0
        shell = torch.zeros(b, n, dtype=pos.dtype, device=pos.device) if shell is None else shell.to(pos.dtype)
        cond = self.spectrum(spectrum)
        cond = torch.where(drop_condition[:, None], self.null_condition.expand_as(cond), cond)
        x = self.embed(torch.cat([h, flag, shell[..., None]], -1)) + (self.time(sinusoidal(t, 32)) + cond)[:, None, :]
        vec = pos[:, None, :, :] - pos[:, :, None, :]  # vec[b, i, j] = pos_j - pos_i
        length = vec.norm(dim=-1)
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        width = self.centers[1] - self.centers[0]
        radial = torch.exp(-((length[..., None] - self.centers) / width) ** 2)
        eye = torch.eye(n, dtype=torch.bool, device=pos.device)
        pair_mask = (node_mask[:, :, None] & node_mask[:, None, :] & ~eye).to(pos.dtype)
        for layer in self.layers:
            x = layer(x, sh, radial, pair_mask)
        out = self.head(x)
        return out[..., :3], out[..., 3:]


class ShellDiffusion(nn.Module):
    """The denoiser plus the schedule and the data scaling: everything sampling needs, in one checkpoint."""

    def __init__(self, species_z: list[int], grid_len: int, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        self.species_z = [int(z) for z in species_z]
        self.denoiser = ShellDenoiser(len(self.species_z), grid_len, self.cfg,
                                      n_invariants=self.cfg["radial_basis"] + 2)
        self.register_buffer("alpha_bar", cosine_alpha_bar(self.cfg["timesteps"]))

    def encode(self, species_z: np.ndarray, offsets: np.ndarray, absorber_z: np.ndarray):
        """Numpy shells -> model tensors (absorber node 0 at the origin + K neighbours)."""
        lookup = {z: i for i, z in enumerate(self.species_z)}
        b, k = species_z.shape
        h = torch.zeros(b, k + 1, len(self.species_z))
        for row in range(b):
            h[row, 0, lookup[int(absorber_z[row])]] = 1.0
            for col in range(k):
                z = int(species_z[row, col])
                if z:
                    if z not in lookup:
                        raise ModelError(f"neighbour species Z={z} was not in the diffusion model's training set")
                    h[row, col + 1, lookup[z]] = 1.0
        pos = torch.zeros(b, k + 1, 3)
        pos[:, 1:] = torch.as_tensor(np.nan_to_num(offsets), dtype=torch.float32) / self.cfg["position_scale"]
        mask = torch.ones(b, k + 1, dtype=torch.bool)
        mask[:, 1:] = torch.as_tensor(species_z > 0)
        return pos, h * self.cfg["species_scale"], mask

    def first_shell(self, species_z: np.ndarray, offsets: np.ndarray) -> torch.Tensor:
        """(B, K+1) labels of true shells: +1 for O within first_shell_cutoff, -1 for every other neighbour."""
        dist = np.linalg.norm(np.nan_to_num(np.asarray(offsets, float), nan=1e9), axis=-1)
        bond = (np.asarray(species_z) == OXYGEN) & (dist < self.cfg["first_shell_cutoff"])
        labels = torch.zeros(bond.shape[0], bond.shape[1] + 1)
        labels[:, 1:] = torch.as_tensor(np.where(bond, 1.0, -1.0), dtype=torch.float32)
        return labels

    @staticmethod
    def requested_shell(counts, k: int) -> torch.Tensor:
        """(B, K+1) labels asking for counts[b] first-shell atoms (nodes are exchangeable: the first ones)."""
        counts = np.clip(np.rint(np.asarray(counts, float)), 0, k).astype(int)
        labels = -torch.ones(len(counts), k + 1)
        labels[:, 0] = 0.0
        for row, c in enumerate(counts):
            labels[row, 1:c + 1] = 1.0
        return labels

    def shell_invariants(self, pos0, mask, shell) -> torch.Tensor:
        """(B, radial_basis + 2) rotation-invariant summary of true shells: the neighbours' radial distribution
        (Gaussian-smeared on the denoiser's radial centres), the mean first-shell bond and CN/6, in model units."""
        centers = self.denoiser.centers
        width = centers[1] - centers[0]
        dist = pos0[:, 1:].norm(dim=-1)
        keep = mask[:, 1:].to(pos0.dtype)
        rdf = (torch.exp(-((dist[..., None] - centers) / width) ** 2) * keep[..., None]).sum(1) / 4.0
        bonded = (shell[:, 1:] > 0).to(pos0.dtype)
        cn = bonded.sum(1)
        mean_bond = (dist * bonded).sum(1) / cn.clamp(min=1)
        return torch.cat([rdf, mean_bond[:, None], cn[:, None] / 6.0], 1)

    @torch.no_grad()
    def head_bond_length(self, spectrum) -> np.ndarray:
        """(B,) mean first-shell bond in Å that the auxiliary head reads from each spectrum (trained with the model)."""
        denoiser = self.denoiser
        if denoiser.invariants is None:
            raise ModelError("this diffusion checkpoint has no auxiliary head (invariant_weight 0): no bond reading")
        guess = denoiser.invariants(denoiser.spectrum(torch.as_tensor(np.asarray(spectrum, np.float32))))
        return (guess[:, self.cfg["radial_basis"]] * self.cfg["position_scale"]).numpy().astype(np.float64)

    def loss(self, pos0, h0, mask, spectrum, shell=None, generator=None):
        b = pos0.shape[0]
        if self.cfg.get("low_noise_power", 1.0) == 1.0:
            steps = torch.randint(1, self.cfg["timesteps"] + 1, (b,), generator=generator)
        else:  # more of the steps where the last fraction of an Å is settled
            u = torch.rand(b, generator=generator) ** self.cfg["low_noise_power"]
            steps = (u * self.cfg["timesteps"]).ceil().long().clamp(1, self.cfg["timesteps"])
        ab = self.alpha_bar[steps][:, None, None]
        eps_x = torch.randn(pos0.shape, generator=generator)
        eps_h = torch.randn(h0.shape, generator=generator)
        noisy = mask.clone()
        noisy[:, 0] = False  # the absorber is never noised
        m = noisy[..., None].float()
        pos_t = torch.where(noisy[..., None], ab.sqrt() * pos0 + (1 - ab).sqrt() * eps_x, pos0)
        h_t = torch.where(noisy[..., None], ab.sqrt() * h0 + (1 - ab).sqrt() * eps_h, h0)
        drop = torch.rand(b, generator=generator) < self.cfg["cond_drop"]
        shell_true = shell
        if shell is not None:  # hidden independently of the spectrum, so either can condition alone
            hide = torch.rand(b, generator=generator) < self.cfg["label_drop"]
            shell = torch.where(hide[:, None], torch.zeros_like(shell), shell)
        pred_x, pred_h = self.denoiser(pos_t, h_t, steps.float() / self.cfg["timesteps"], spectrum, mask, drop, shell)
        denom = m.sum() * 3
        loss_x = (((pred_x - eps_x) ** 2) * m).sum() / denom
        loss_h = (((pred_h - eps_h) ** 2) * m).sum() / (m.sum() * h0.shape[-1])
        total = loss_x + loss_h
        if self.denoiser.invariants is not None and shell_true is not None:
            # the true labels (not the hidden ones): the target is what the shell is, whatever the denoiser was told
            target = self.shell_invariants(pos0, mask, shell_true)
            guess = self.denoiser.invariants(self.denoiser.spectrum(spectrum))
            total = total + self.cfg["invariant_weight"] * ((guess - target) ** 2).mean()
        return total, loss_x.detach(), loss_h.detach()

    def _guided(self, pos, h, t, spectrum, mask, guidance, unconditional, shell):
        b = pos.shape[0]
        if unconditional:
            return self.denoiser(pos, h, t, spectrum, mask, torch.ones(b, dtype=torch.bool))
        ex, eh = self.denoiser(pos, h, t, spectrum, mask, torch.zeros(b, dtype=torch.bool), shell)
        if guidance == 0:
            return ex, eh
        ux, uh = self.denoiser(pos, h, t, spectrum, mask, torch.ones(b, dtype=torch.bool))
        return (1 + guidance) * ex - guidance * ux, (1 + guidance) * eh - guidance * uh

    @torch.no_grad()
    def sample(self, spectrum: np.ndarray, absorber_z: np.ndarray, k: int, n_samples: int, seed: int = 0,
               guidance: float | None = None, unconditional: bool = False, steps: int | None = None,
               first_shell_counts=None, inpaint_ligand: bool = False, eta: float | None = None,
               clip_radius: float | None = None, head_bond: bool | None = None, cn_retries: int | None = None):
        """n_samples shells per spectrum: species (B, n, K) atomic numbers and offsets (B, n, K, 3) in Å.
        first_shell_counts (B,): the CN each spectrum's shells are asked to have (e.g. the SPT's); None: unknown.
        `unconditional` drops both the spectrum and the count (the prior). `inpaint_ligand`: the nodes asked to be
        first-shell O get their species by inpainting (O, noised to each step's level) instead of denoising it,
        since the label already says what they are. `eta` (1 ancestral, 0 DDIM), `clip_radius`, `head_bond` (see
        `dilate_first_shell`) and `cn_retries` override the configured ones for this call only: a shell asked for
        a CN that comes out with another count of first-shell O is drawn again from fresh noise up to `cn_retries`
        times, and kept as it is if every draw misses."""
        cfg = self.cfg
        guidance = cfg["guidance"] if guidance is None else guidance
        eta = cfg["eta"] if eta is None else eta
        clip_radius = cfg.get("clip_radius", 0.0) if clip_radius is None else clip_radius
        cn_retries = cfg.get("cn_retries", DEFAULTS["cn_retries"]) if cn_retries is None else cn_retries
        steps = steps or cfg["sample_steps"]
        gen = torch.Generator().manual_seed(seed)
        spectrum = torch.as_tensor(np.repeat(np.asarray(spectrum, np.float32), n_samples, 0))
        absorber = np.repeat(np.asarray(absorber_z), n_samples)
        b = len(absorber)
        shell = (None if first_shell_counts is None or unconditional else
                 self.requested_shell(np.repeat(np.asarray(first_shell_counts), n_samples), k))

        def draw(rows):
            return self._reverse(spectrum[rows], absorber[rows], None if shell is None else shell[rows], k, gen,
                                 guidance, unconditional, steps, inpaint_ligand, eta, clip_radius)

        species, offsets = draw(np.arange(b))
        if shell is not None:
            asked = (shell[:, 1:] > 0).sum(1).numpy()
            for _ in range(int(cn_retries)):
                miss = np.flatnonzero(self.first_shell_count(species, offsets) != asked)
                if not len(miss):
                    break
                again_species, again_offsets = draw(miss)
                hit = self.first_shell_count(again_species, again_offsets) == asked[miss]
                species[miss[hit]], offsets[miss[hit]] = again_species[hit], again_offsets[hit]
        if not unconditional and self.uses_head_bond(head_bond):
            offsets = dilate_first_shell(species, offsets, self.head_bond_length(spectrum),
                                         cfg["first_shell_cutoff"])
        n_sites = b // n_samples
        return species.reshape(n_sites, n_samples, k), offsets.reshape(n_sites, n_samples, k, 3)

    def first_shell_count(self, species: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(B,) number of O within first_shell_cutoff of each sampled (B, K) shell: the CN it is scored by."""
        return first_shell_mask(species, offsets, self.cfg["first_shell_cutoff"]).sum(-1)

    def uses_head_bond(self, head_bond: bool | None = None) -> bool:
        """Whether sampling sizes the first shell by the head's bond: asked for (None: the configured setting)
        and possible (the checkpoint has the head)."""
        wanted = self.cfg.get("head_bond", DEFAULTS["head_bond"]) if head_bond is None else head_bond
        return bool(wanted) and self.denoiser.invariants is not None

    def _reverse(self, spectrum, absorber, shell, k, gen, guidance, unconditional, steps, inpaint_ligand, eta,
                 clip_radius):
        """One reverse diffusion from pure noise for each row: species (B, K) and offsets (B, K, 3) in Å."""
        cfg = self.cfg
        ball = clip_radius / cfg["position_scale"] if clip_radius > 0 else None
        b = len(absorber)
        _, h_abs, _ = self.encode(np.zeros((b, k), dtype=int), np.zeros((b, k, 3)), absorber)
        mask = torch.ones(b, k + 1, dtype=torch.bool)
        pos = torch.randn(b, k + 1, 3, generator=gen)
        h = torch.randn(b, k + 1, len(self.species_z), generator=gen)
        pos[:, 0], h[:, 0] = 0.0, h_abs[:, 0]
        ligand = None
        if inpaint_ligand and shell is not None and OXYGEN in self.species_z:
            ligand = (shell > 0)[..., None].expand_as(h)
            h_ligand = torch.zeros_like(h)
            h_ligand[..., list(self.species_z).index(OXYGEN)] = cfg["species_scale"]
        schedule = torch.linspace(cfg["timesteps"], 0, steps + 1).round().long()
        for t_now, t_next in zip(schedule[:-1], schedule[1:]):
            ab_now, ab_next = self.alpha_bar[t_now], self.alpha_bar[t_next]
            t_in = torch.full((b,), float(t_now) / cfg["timesteps"])
            ex, eh = self._guided(pos, h, t_in, spectrum, mask, guidance, unconditional, shell)
            sigma = eta * ((1 - ab_next) / (1 - ab_now) * (1 - ab_now / ab_next)).clamp(min=0).sqrt()
            new = []
            for value, eps, limit in ((pos, ex, 4.0), (h, eh, 1.0)):
                # the usual clip of the denoised estimate (|x| <= 4 units = 8 Å, |h| <= 1): at high noise 1/sqrt(ab)
                # amplifies any error of eps by up to ~300x
                x0 = (value - (1 - ab_now).sqrt() * eps) / ab_now.sqrt()
                if value is pos and ball is not None:
                    norm = x0.norm(dim=-1, keepdim=True).clamp(min=1e-9)
                    x0 = x0 * (ball / norm).clamp(max=1.0)
                else:
                    x0 = x0.clamp(-limit, limit)
                direction = (1 - ab_next - sigma ** 2).clamp(min=0).sqrt() * eps
                noise = sigma * torch.randn(value.shape, generator=gen) if t_next > 0 else 0.0
                new.append(ab_next.sqrt() * x0 + direction + noise)
            pos, h = new
            if ligand is not None:
                noised = ab_next.sqrt() * h_ligand + (1 - ab_next).sqrt() * torch.randn(h.shape, generator=gen)
                h = torch.where(ligand, noised, h)
            pos[:, 0], h[:, 0] = 0.0, h_abs[:, 0]
        if not (torch.isfinite(pos).all() and torch.isfinite(h).all()):
            raise ModelError(f"diffusion sampling diverged (non-finite coordinates) with {steps} steps and guidance "
                             f"{guidance}; try fewer sample_steps or a smaller guidance")
        species = torch.as_tensor(self.species_z)[h[:, 1:].argmax(-1)].numpy()
        return species, (pos[:, 1:] * cfg["position_scale"]).numpy().astype(np.float64)


def dilate_first_shell(species: np.ndarray, offsets: np.ndarray, bond: np.ndarray, cutoff: float,
                       ligand: int = OXYGEN) -> np.ndarray:
    """Scale each shell's first-shell ligands (within `cutoff`) about the absorber so their mean distance is `bond`.

    The auxiliary head reads the mean bond from the spectrum to ~0.01 Å, the sampled geometry only to ~0.07 Å
    (benchmarks/README.md, "The head's bond length and CN redraws at sampling"), so the sample keeps its directions, count and
    second shell and takes its size from the head. A dilation about the absorber commutes with rotations and
    reflections, so the sampler stays equivariant. species (B, K), offsets (B, K, 3), bond (B,) in Å."""
    dist = np.linalg.norm(offsets, axis=-1)
    bonded = first_shell_mask(species, offsets, cutoff, ligand)
    count = bonded.sum(-1)
    mean = (dist * bonded).sum(-1) / np.maximum(count, 1)
    factor = np.where(count > 0, np.asarray(bond, float) / np.where(mean > 0, mean, 1.0), 1.0)
    return np.where(bonded[..., None], offsets * factor[:, None, None], offsets)


def resolve_cfg(cfg: dict | None) -> dict:
    unknown = sorted(set(cfg or {}) - set(DEFAULTS))
    if unknown:
        raise ModelError(f"unknown diffusion setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    return DEFAULTS | dict(cfg or {})


def fit_diffusion(species_z: np.ndarray, offsets: np.ndarray, absorber_z: np.ndarray, spectra: np.ndarray,
                  cfg: dict | None = None, val: tuple | None = None, log_every: int = 10) -> tuple[ShellDiffusion, dict]:
    """Train on (N, K) shells with their (N, G) spectra; returns the EMA model and a training summary."""
    cfg = resolve_cfg(cfg)
    if len(species_z) == 0:
        raise ModelError("no training shells: the diffusion model needs at least one site of its elements")
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    vocab = sorted({int(z) for z in np.unique(species_z) if z > 0} | {int(z) for z in absorber_z})
    model = ShellDiffusion(vocab, spectra.shape[1], cfg)
    ema = copy.deepcopy(model).eval()
    pos0, h0, mask = model.encode(species_z, offsets, absorber_z)
    shell = model.first_shell(species_z, offsets)
    spec = torch.as_tensor(np.asarray(spectra, np.float32))
    val_tensors = None
    if val is not None and len(val[0]):
        vpos, vh, vmask = model.encode(val[0], val[1], val[2])
        val_tensors = (vpos, vh, vmask, torch.as_tensor(np.asarray(val[3], np.float32)),
                       model.first_shell(val[0], val[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    n, bs = len(pos0), cfg["batch_size"]
    total_steps = cfg["epochs"] * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=max(total_steps, 1),
                                                pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg["seed"])
    history, start = [], time.perf_counter()
    for epoch in tqdm(range(cfg["epochs"]), desc="diffusion", unit="epoch", mininterval=10):
        model.train()
        order = torch.randperm(n, generator=gen)
        sums = np.zeros(3)
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            loss, lx, lh = model.loss(pos0[idx], h0[idx], mask[idx], spec[idx], shell[idx], generator=gen)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.mul_(cfg["ema"]).add_(pm.detach(), alpha=1 - cfg["ema"])
            sums += [float(loss.detach()) * len(idx), float(lx) * len(idx), float(lh) * len(idx)]
        if epoch % log_every == 0 or epoch == cfg["epochs"] - 1:
            row = {"epoch": epoch, "train_loss": sums[0] / n, "train_loss_pos": sums[1] / n,
                   "train_loss_species": sums[2] / n, "seconds": time.perf_counter() - start}
            if val_tensors is not None:
                row["val_loss"] = evaluation_loss(ema, *val_tensors)
            history.append(row)
    summary = {"train_seconds": time.perf_counter() - start, "n_train": int(n), "cfg": cfg,
               "species_z": vocab, "history": history, "n_parameters": sum(p.numel() for p in model.parameters())}
    return ema, summary


@torch.no_grad()
def evaluation_loss(model: ShellDiffusion, pos0, h0, mask, spectrum, shell=None, repeats: int = 4) -> float:
    """Mean denoising loss over fixed random steps and noise (seeded), comparable between epochs."""
    gen = torch.Generator().manual_seed(1234)
    return float(np.mean([float(model.loss(pos0, h0, mask, spectrum, shell, generator=gen)[0])
                          for _ in range(repeats)]))


def save_diffusion(path, model: ShellDiffusion, meta: dict) -> None:
    """Plain tensors and JSON text only, so the checkpoint loads with torch's safe weights_only reader."""
    from ..atomic import atomic_path

    blob = {"state": model.state_dict(), "json": json.dumps({"version": MODEL_VERSION, "species_z": model.species_z,
                                                             "cfg": model.cfg,
            "grid_len": model.denoiser.spectrum[0].in_features, "meta": meta}, default=float)}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_diffusion(path) -> tuple[ShellDiffusion, dict]:
    from ..readers import load_torch

    blob = load_torch(path, weights_only=True)
    info = json.loads(blob["json"])
    # version 2 differs only in a default (no auxiliary head), which its saved cfg records: it loads as it was
    if info.get("version", 1) not in (2, MODEL_VERSION):
        raise ModelError(f"{path}: diffusion checkpoint of model version {info.get('version', 1)}, this xasengine "
                         f"needs {MODEL_VERSION}; retrain it (snakemake --forcerun train_diffusion)")
    model = ShellDiffusion(info["species_z"], info["grid_len"], info["cfg"])
    model.load_state_dict(blob["state"])
    return model.eval(), info["meta"]
