"""Spectral Pattern Translator (SPT, Zhong et al. 2026, §4.3): XANES spectrum -> local-structure descriptors.

Two ideas stacked on a token embedding of the spectrum:

* multi-scale spectral blocks: the embedded spectrum is folded into 2D at the periods of its strongest
  Fourier components (the TimesNet idea) so one 2D convolution sees both neighbouring energies and the same
  phase of the oscillation one period away, i.e. it acts as a learnable band-pass filter per scattering
  length; per-sample attention from a query projected out of the global context decides which bands matter;
* local contextual association: graph attention in which each energy point attends only to points within a
  sliding window, so sharp edge features are refined by their neighbourhood without being smeared globally.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

STD_FLOOR_FRACTION = 0.1  # input std floor, relative to the median point's std (see SPT.set_input_scaling)


class MultiKernelConv2d(nn.Module):
    """Inception-style conv: the average of square kernels of several sizes, all 'same'-padded.

    Averaging parallel linear convolutions equals one convolution with the averaged, centre-aligned
    kernel, so the kernels are merged before a single conv call: same maths, one pass over the data.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...]):
        super().__init__()
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ModelError(f"kernel_sizes must be odd positive integers, got {kernel_sizes}")
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.largest = self.kernel_sizes[-1]
        self.weights = nn.ParameterList()
        for k in self.kernel_sizes:
            weight = torch.empty(out_channels, in_channels, k, k)
            nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
            self.weights.append(nn.Parameter(weight))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def merged_weight(self) -> torch.Tensor:
        """The single kernel equal to averaging all parallel branches."""
        total = 0
        for weight in self.weights:
            margin = (self.largest - weight.shape[-1]) // 2
            total = total + F.pad(weight, (margin, margin, margin, margin))
        return total / len(self.weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.merged_weight(), self.bias, padding=self.largest // 2)


class SpectralBandBlock(nn.Module):
    """Multi-scale spectral semantic discovery (§4.3.1) on a (batch, energy, channel) sequence.

    Training picks the top-k periods from the batch's mean Fourier amplitude, as TimesNet does, and keeps a
    running average of that amplitude; evaluation uses the running average so that a spectrum's prediction
    does not depend on which other spectra share its batch.

    Bands are fused with per-sample attention instead of TimesNet's amplitude softmax: a spectral query
    q = MLP(mean over energy of the input) scores each band's key k_b = W (mean over energy of band b),
    weights = softmax_b(q . k_b / sqrt(C)), so the spectrum's content, not only its FFT, selects the bands.
    """

    def __init__(self, seq_len: int, d_model: int, top_k: int, kernel_sizes: tuple[int, ...],
                 dropout: float, amplitude_momentum: float = 0.1):
        super().__init__()
        n_freq = seq_len // 2 + 1
        if not 1 <= top_k <= n_freq - 1:
            raise ModelError(f"top_k must be in [1, {n_freq - 1}] for a grid of {seq_len} points, got {top_k}")
        self.top_k = top_k
        self.amplitude_momentum = amplitude_momentum
        self.band_filter = nn.Sequential(
            MultiKernelConv2d(d_model, d_model, kernel_sizes),
            nn.GELU(),
            MultiKernelConv2d(d_model, d_model, kernel_sizes),
        )
        self.context_query = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.band_key = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("running_amplitude", torch.zeros(n_freq))
        self.register_buffer("amplitude_tracked", torch.zeros((), dtype=torch.bool))

    def dominant_frequencies(self, x: torch.Tensor) -> list[int]:
        """Indices of the k strongest non-zero frequencies of the sequence along the energy axis."""
        if self.training or not bool(self.amplitude_tracked):
            amplitude = torch.fft.rfft(x, dim=1).abs().mean(dim=(0, 2)).detach()
            if self.training:
                with torch.no_grad():
                    if bool(self.amplitude_tracked):
                        self.running_amplitude.lerp_(amplitude, self.amplitude_momentum)
                    else:
                        self.running_amplitude.copy_(amplitude)
                        self.amplitude_tracked.fill_(True)
        else:
            amplitude = self.running_amplitude
        return (torch.topk(amplitude[1:], self.top_k).indices + 1).tolist()

    def filter_band(self, x: torch.Tensor, period: int) -> torch.Tensor:
        """Fold the sequence into rows of one period, convolve in 2D, unfold and crop to the input length."""
        batch, seq_len, channels = x.shape
        padded_len = math.ceil(seq_len / period) * period
        folded = F.pad(x, (0, 0, 0, padded_len - seq_len)) if padded_len > seq_len else x
        folded = folded.reshape(batch, padded_len // period, period, channels).permute(0, 3, 1, 2)
        filtered = self.band_filter(folded).permute(0, 2, 3, 1).reshape(batch, padded_len, channels)
        return filtered[:, :seq_len]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq_len = x.shape[1]
        periods = [seq_len // f for f in self.dominant_frequencies(x)]
        bands = [self.filter_band(x, p) for p in periods]
        query = self.context_query(x.mean(dim=1))  # (B, C)
        keys = self.band_key(torch.stack([band.mean(dim=1) for band in bands], dim=1))  # (B, k, C)
        band_weights = torch.softmax(torch.einsum("bc,bkc->bk", query, keys) / math.sqrt(x.shape[-1]), dim=1)
        band_weights = band_weights[:, :, None, None]
        aggregated = band_weights[:, 0] * bands[0]
        for i in range(1, len(bands)):
            aggregated.addcmul_(band_weights[:, i], bands[i])
        return self.norm(x + self.dropout(aggregated))


class WindowGraphAttention(nn.Module):
    """Local contextual association (§4.3.2): graph attention over energy points, edges only for |i-j| <= w.

    Score e_ij = a^T LeakyReLU(W [h_i || h_j]) (nonlinearity before the vector a, GATv2 form, so the ranking
    of neighbours can depend on the target node). W [h_i || h_j] is split into W_target h_i + W_neighbour h_j,
    projected once per node into a small interaction space. The window is walked offset by offset over the
    nodes that have a neighbour at that offset (2w+1 passes over (B, T, C)), which is cheaper in memory than
    materialising (B, T, 2w+1, C) and far cheaper than a masked (T, T) attention matrix.
    """

    def __init__(self, d_model: int, window: int, dropout: float, attention_dim: int = 8,
                 negative_slope: float = 0.2):
        super().__init__()
        if window < 1:
            raise ModelError(f"window must be >= 1, got {window}")
        self.window = window
        self.project_target = nn.Linear(d_model, attention_dim, bias=False)
        self.project_neighbour = nn.Linear(d_model, attention_dim)
        self.score_vector = nn.Parameter(torch.randn(attention_dim) / math.sqrt(attention_dim))
        self.value = nn.Linear(d_model, d_model)
        self.negative_slope = negative_slope
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq_len = x.shape[1]
        offsets = range(-self.window, self.window + 1)
        target, neighbour, value = self.project_target(x), self.project_neighbour(x), self.value(x)
        # scores[:, k, i] scores the edge from j = i + offsets[k] to i; edges that would leave the grid stay -inf.
        scores = x.new_full((x.shape[0], len(offsets), seq_len), float("-inf"))
        for k, offset in enumerate(offsets):
            nodes, neighbours = self.overlap(seq_len, offset)
            interaction = F.leaky_relu_(target[:, nodes] + neighbour[:, neighbours], self.negative_slope)
            scores[:, k, nodes] = interaction @ self.score_vector
        attention = torch.softmax(scores, dim=1).unsqueeze(-1)
        aggregated = attention[:, self.window] * value  # offset 0: every node is its own neighbour
        for k, offset in enumerate(offsets):
            if offset:
                nodes, neighbours = self.overlap(seq_len, offset)
                aggregated[:, nodes].addcmul_(attention[:, k, nodes], value[:, neighbours])
        return self.norm(x + self.dropout(aggregated))

    @staticmethod
    def overlap(seq_len: int, offset: int) -> tuple[slice, slice]:
        """Nodes i that have a neighbour j = i + offset on the grid, and those neighbours."""
        nodes = slice(max(0, -offset), seq_len - max(0, offset))
        return nodes, slice(nodes.start + offset, nodes.stop + offset)


class SPT(nn.Module):
    """Spectrum (+ its energy axis, + optionally the absorbing element) -> one output per descriptor.

    heads maps each descriptor to its number of classes; 0 marks a regression head (one scalar per spectrum,
    on the standardised scale of the training targets). Joint mode passes all descriptors of a site group;
    expert mode passes one. The architecture arguments have no defaults here: train.DEFAULT_CFG holds them.

    Inputs per energy point: mu standardised with the training set's mean and std at that point (set by
    set_input_scaling; spectra share one edge shape, and the structure is in O(1e-2) departures from it that
    would otherwise be small next to the shape itself), dmu/dE (edge and pre-edge positions and white-line
    curvature, which carry oxidation state and coordination), and the energy.
    """

    def __init__(self, grid_len: int, heads: dict[str, int], n_elements: int = 0, *, d_model: int,
                 n_blocks: int, top_k: int, kernel_sizes: tuple[int, ...], window: int, dropout: float,
                 readout_dim: int = 64, readout_channels: int = 4, energy_center: float = 0.0,
                 energy_scale: float = 1.0):
        super().__init__()
        if grid_len < 4:
            raise ModelError(f"grid_len must be >= 4, got {grid_len}")
        if not heads:
            raise ModelError("SPT needs at least one target head")
        if any(n < 0 for n in heads.values()):
            raise ModelError(f"head sizes must be 0 (regression) or a number of classes, got {heads}")
        if energy_scale <= 0:
            raise ModelError(f"energy_scale must be positive, got {energy_scale}")
        self.hparams = dict(grid_len=grid_len, heads=dict(heads), n_elements=n_elements, d_model=d_model,
                            n_blocks=n_blocks, top_k=top_k, kernel_sizes=tuple(kernel_sizes), window=window,
                            dropout=dropout, readout_dim=readout_dim, readout_channels=readout_channels,
                            energy_center=energy_center, energy_scale=energy_scale)
        self.grid_len = grid_len
        self.energy_center = energy_center
        self.energy_scale = energy_scale
        # Per-point input scaling (see the class docstring); identity until set_input_scaling is called.
        self.register_buffer("spectrum_mean", torch.zeros(grid_len))
        self.register_buffer("spectrum_std", torch.ones(grid_len))
        # Each energy point is embedded from (mu, dmu/dE, E) at itself and its two neighbours: a width-3
        # convolution, written as unfold + Linear because that yields energy-major (B, T, C) memory directly and
        # runs several times faster on CPU than Conv1d with three input channels.
        self.token_embedding = nn.Linear(3 * 3, d_model)
        self.position_embedding = nn.Parameter(torch.randn(1, grid_len, d_model) * 0.02)
        self.element_embedding = nn.Embedding(n_elements, d_model) if n_elements else None
        self.embedding_dropout = nn.Dropout(dropout)
        self.spectral_blocks = nn.ModuleList(
            SpectralBandBlock(grid_len, d_model, top_k, tuple(kernel_sizes), dropout) for _ in range(n_blocks)
        )
        self.graph_attention = WindowGraphAttention(d_model, window, dropout)
        # Readout over the flattened sequence rather than a mean pool: where along the energy axis a feature
        # sits (the edge position) is itself the signal for oxidation state, and a mean pool would discard it.
        # Each point is first squeezed to a few channels: flattening all d_model channels put ~95% of the
        # weights in this one layer (grid_len * d_model * readout_dim), which overfits a few hundred sites.
        self.readout = nn.Sequential(nn.Linear(d_model, readout_channels), nn.Flatten(),
                                     nn.Linear(grid_len * readout_channels, readout_dim), nn.GELU(),
                                     nn.Dropout(dropout))
        self.heads = nn.ModuleDict({name: nn.Linear(readout_dim, n or 1) for name, n in heads.items()})

    @torch.no_grad()
    def set_input_scaling(self, spectra: torch.Tensor) -> None:
        """Standardise mu at each energy point with these (training) spectra's mean and std.

        The std is floored at STD_FLOOR_FRACTION of the median point's: where all training spectra agree (the
        flat pre-edge of O and Li K edges, a fifth of the O grid with std < 0.01) a bare std would amplify
        detector noise and the noise augmentation up to 1000x over the points that carry structure. On 1,034
        O sites the floor raised test NNOSM R² from 0.61 to 0.69 (benchmarks/README.md).
        """
        self.spectrum_mean.copy_(spectra.mean(dim=0))
        if len(spectra) < 2:
            self.spectrum_std.fill_(1.0)
            return
        std = spectra.std(dim=0)
        self.spectrum_std.copy_(std.clamp(min=max(1e-3, STD_FLOOR_FRACTION * float(std.median()))))

    def check_inputs(self, spectrum: torch.Tensor, energy: torch.Tensor, element: torch.Tensor | None) -> None:
        """Refuse inputs the model cannot interpret, with a message saying what was wrong."""
        if spectrum.ndim != 2 or spectrum.shape[1] != self.grid_len:
            raise ModelError(f"spectrum must have shape (batch, {self.grid_len}), got {tuple(spectrum.shape)}")
        if energy.shape != spectrum.shape:
            raise ModelError(f"energy shape {tuple(energy.shape)} differs from spectrum shape {tuple(spectrum.shape)}")
        # One float64 sum per input is NaN/inf exactly when an element is (float32 values cannot overflow it),
        # and costs one pass instead of isfinite's four.
        if not all(torch.isfinite(values.sum(dtype=torch.float64)) for values in (spectrum, energy)):
            raise ModelError("spectrum or energy contains NaN or infinite values")
        if self.element_embedding is None:
            return
        if element is None or element.shape != spectrum.shape[:1]:
            raise ModelError("this model needs one absorbing-element index per spectrum")
        n_elements = self.element_embedding.num_embeddings
        if element.numel() and not (0 <= int(element.min()) and int(element.max()) < n_elements):
            raise ModelError(f"element index out of range [0, {n_elements})")

    def forward(self, spectrum: torch.Tensor, energy: torch.Tensor,
                element: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        pooled = self.embed(spectrum, energy, element)
        return {name: head(pooled).squeeze(-1) if self.hparams["heads"][name] == 0 else head(pooled)
                for name, head in self.heads.items()}

    def embed(self, spectrum: torch.Tensor, energy: torch.Tensor,
              element: torch.Tensor | None = None) -> torch.Tensor:
        """The shared latent vector (B, readout_dim) every head reads: what the UMAP report maps."""
        self.check_inputs(spectrum, energy, element)
        step = torch.diff(energy, dim=1)
        if not bool((step > 0).all()):
            raise ModelError("energy must increase strictly along the grid (dmu/dE is an input)")
        slope = torch.diff(spectrum, dim=1) / step  # (B, T-1), between grid points
        derivative = torch.cat([slope[:, :1], 0.5 * (slope[:, 1:] + slope[:, :-1]), slope[:, -1:]], dim=1)
        channels = torch.stack([(spectrum - self.spectrum_mean) / self.spectrum_std, derivative,
                                (energy - self.energy_center) / self.energy_scale], dim=-1)  # (B, T, 3)
        edge_padded = torch.cat([channels[:, :1], channels, channels[:, -1:]], dim=1)
        windows = edge_padded.unfold(1, 3, 1).flatten(2)  # (B, T, 9)
        x = self.token_embedding(windows) + self.position_embedding
        if self.element_embedding is not None:
            x = x + self.element_embedding(element).unsqueeze(1)
        x = self.embedding_dropout(x)
        for block in self.spectral_blocks:
            x = block(x)
        return self.readout(self.graph_attention(x))

    def embed_batched(self, spectrum: torch.Tensor, energy: torch.Tensor, element: torch.Tensor | None,
                      batch_size: int = 512) -> torch.Tensor:
        """`embed` in eval mode over batches, each moved to the model's device on its own, so a whole split's
        latents fit in (device) memory: training keeps their distribution in the checkpoint, the UMAP and
        out-of-distribution reports map new spectra against it."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, len(spectrum), batch_size):
                window = slice(start, start + batch_size)
                out.append(self.embed(spectrum[window].to(device), energy[window].to(device),
                                      None if element is None else element[window].to(device)).cpu())
        self.train(was_training)
        return torch.cat(out) if out else torch.empty((0, self.hparams["readout_dim"]))
