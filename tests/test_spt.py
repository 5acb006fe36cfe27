"""SPT model, training, evaluation and random-forest baseline on real torch / scikit-learn.

The site tables here are synthetic (peak position and width set by the labels, plus noise) so that
learning is checkable in seconds; the real runs use the FEFF dataset.
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from xasengine.errors import ModelError
from xasengine.evaluate import evaluate_model, latent_vectors, metrics, predict_table
from xasengine.models.family import fit_family, load_model, score_model
from xasengine.models.spt import SPT, SpectralBandBlock, WindowGraphAttention
from xasengine.models.targets import IGNORE_INDEX, TargetSpec
from xasengine.train import fit_spt, load_checkpoint, masked_loss, save_checkpoint, train_spt

GRID = 64
SMALL_CFG = {"d_model": 16, "n_blocks": 1, "top_k": 2, "window": 3, "dropout": 0.0, "lr": 3e-3,
             "batch_size": 32, "max_epochs": 25, "patience": 6, "seed": 0}


def synthetic_table(n_structures: int = 60, seed: int = 0) -> dict:
    """Each structure has two metal sites (Co/Mn) and one O site; OS shifts the edge, CN sets the peak width."""
    rng = np.random.default_rng(seed)
    energy = np.linspace(-10.0, 40.0, GRID)
    rows = []
    for s in range(n_structures):
        split = "train" if s < 0.6 * n_structures else ("val" if s < 0.8 * n_structures else "test")
        for element in ("Co", "Mn", "O"):
            os_ = -2.0 if element == "O" else float(rng.choice([2.0, 3.0, 4.0]))
            cn = float(rng.choice([4.0, 6.0]))
            edge = (2.5 * os_ if element != "O" else 3.0) + rng.normal(0, 0.3)
            width = 1.5 if cn == 4.0 else 4.0
            nnrs = 0.05 * cn + rng.normal(0, 0.02)
            mu = (1 / (1 + np.exp(-(energy - edge) / 1.2))
                  + (0.8 + 2 * nnrs) * np.exp(-0.5 * ((energy - edge - 4) / width) ** 2)
                  + rng.normal(0, 0.02, GRID))
            rows.append((mu, element, f"mp-{s}", split, os_, cn, nnrs))
    mu, element, sid, split, os_, cn, nnrs = map(np.array, zip(*rows))
    n = len(rows)
    nnrs[rng.random(n) < 0.1] = np.nan  # unlabelled sites must be skipped, not learnt as zeros
    is_o = element == "O"
    descriptors = {
        "OS": os_, "CN": cn, "CN2": np.where(cn == 4.0, 8.0, 12.0), "NNRS": nnrs,
        "PSGO": np.full(n, 48.0), "OCN": np.where(is_o, np.nan, cn), "MOOD": np.where(is_o, np.nan, 2.0 + nnrs),
        "NNOSM": np.where(is_o, 2.0 + nnrs, np.nan),
    }
    descriptors["PSGO"][::2] = 24.0
    return {"spectrum": mu.astype(np.float32), "energy": np.tile(energy, (n, 1)).astype(np.float32),
            "element": element, "structure_id": sid, "split": split, "descriptors": descriptors}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and spinning OpenMP threads stall on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def table():
    return synthetic_table()


@pytest.fixture(scope="module")
def trained(table):
    return fit_spt(table, "nonO", SMALL_CFG)


def test_forward_shapes():
    model = SPT(50, {"OS": 3, "NNRS": 0}, n_elements=2, d_model=16, n_blocks=2, top_k=3, kernel_sizes=(1, 3),
                window=4, dropout=0.1)
    out = model(torch.rand(5, 50), torch.linspace(-10, 40, 50).expand(5, 50), torch.tensor([0, 1, 0, 1, 1]))
    assert out["OS"].shape == (5, 3)
    assert out["NNRS"].shape == (5,)


def test_graph_attention_sees_only_its_window():
    torch.manual_seed(0)
    layer = WindowGraphAttention(d_model=8, window=2, dropout=0.0).eval()
    x = torch.randn(1, 20, 8)
    perturbed = x.clone()
    perturbed[0, 10] += 5.0
    with torch.no_grad():
        before, after = layer(x), layer(perturbed)
    changed = (before - after).abs().amax(dim=-1)[0]
    assert torch.all(changed[[6, 7, 13, 14]] == 0)  # |i - 10| > 2: no edge from node 10
    assert torch.all(changed[8:13] > 0)  # |i - 10| <= 2: node 10 is a neighbour


def test_graph_attention_matches_dense_masked_attention():
    torch.manual_seed(1)
    layer = WindowGraphAttention(d_model=8, window=3, dropout=0.0).eval()
    x = torch.randn(2, 15, 8)
    with torch.no_grad():
        target, neighbour = layer.project_target(x), layer.project_neighbour(x)
        interaction = torch.nn.functional.leaky_relu(target[:, :, None] + neighbour[:, None], layer.negative_slope)
        scores = interaction @ layer.score_vector  # (B, i, j) over all pairs
        index = torch.arange(15)
        scores = scores.masked_fill((index[:, None] - index[None]).abs() > 3, float("-inf"))
        dense = layer.norm(x + torch.softmax(scores, dim=-1) @ layer.value(x))
        assert torch.allclose(layer(x), dense, atol=1e-5)


@pytest.mark.parametrize("period", [5, 10, 36])
def test_band_folding_pads_and_crops_lengths_not_divisible_by_the_period(period):
    block = SpectralBandBlock(seq_len=37, d_model=8, top_k=3, kernel_sizes=(1, 3), dropout=0.0)
    x = torch.randn(2, 37, 8)
    assert block.filter_band(x, period).shape == x.shape
    assert block(x).shape == x.shape  # training mode: periods from this batch
    assert block.eval()(x).shape == x.shape  # eval mode: periods from the running amplitude


def test_masked_loss_skips_unlabelled_sites():
    specs = [TargetSpec("OS", "classification", classes=(2.0, 3.0, 4.0)), TargetSpec("NNRS", "regression")]
    logits = torch.randn(4, 3, requires_grad=True)
    values = torch.randn(4, requires_grad=True)
    targets = {"OS": torch.tensor([0, IGNORE_INDEX, 2, IGNORE_INDEX]),
               "NNRS": torch.tensor([0.5, float("nan"), -1.0, float("nan")])}
    loss, per_task = masked_loss({"OS": logits, "NNRS": values}, targets, specs)
    loss.backward()
    labelled = [0, 2]
    expected_ce = torch.nn.functional.cross_entropy(logits[labelled], targets["OS"][labelled])
    expected_mse = ((values[labelled] - targets["NNRS"][labelled]) ** 2).mean()
    assert per_task["OS"] == pytest.approx(float(expected_ce.detach()), rel=1e-6)
    assert per_task["NNRS"] == pytest.approx(float(expected_mse.detach()), rel=1e-6)
    assert torch.isfinite(logits.grad).all() and torch.isfinite(values.grad).all()
    assert torch.all(logits.grad[[1, 3]] == 0) and torch.all(values.grad[[1, 3]] == 0)


def test_training_beats_chance_and_random_forest_fits(table, trained, tmp_path):
    model, meta, summary = trained
    assert summary["best_epoch"] >= 1 and summary["n_sites"]["test"] == 24
    scores = evaluate_model(model, meta, table, split="test")["descriptors"]
    assert scores["OS"]["accuracy"] > 0.8  # three balanced classes: chance is 1/3
    assert scores["CN"]["accuracy"] > 0.8  # two classes: chance is 1/2
    assert scores["NNRS"]["n"] < 24  # NaN truths are left out of the score
    forests = fit_family("rf", table, "nonO", {"n_estimators": 50}, targets=["OS", "CN", "NNRS"])
    forests.save(tmp_path / "rf.joblib")
    rf_scores = score_model(load_model(tmp_path / "rf.joblib"), table)
    assert rf_scores["OS"]["accuracy"] > 0.6
    assert rf_scores["NNRS"]["r2"] is not None
    assert sorted(forests.state) == ["CN", "NNRS", "OS"]


def test_oxygen_group_trains_with_a_constant_descriptor(table, tmp_path):
    summary = train_spt(table, "O", tmp_path / "o.pt", {**SMALL_CFG, "max_epochs": 2})
    model, meta = load_checkpoint(tmp_path / "o.pt")
    assert summary["targets"] == ["OS", "CN", "CN2", "NNRS", "NNOSM", "PSGO"]
    assert model.element_embedding is None
    assert evaluate_model(model, meta, table)["descriptors"]["OS"]["accuracy"] == 1.0  # OS = -2 everywhere


def test_flat_energy_points_are_not_amplified_by_input_scaling():
    rng = np.random.default_rng(0)
    spectra = torch.from_numpy(rng.normal(1.0, 0.2, (200, 32)).astype(np.float32))
    spectra[:, :8] = 0.0  # a flat pre-edge shared by every training spectrum
    model = SPT(32, {"NNOSM": 0}, d_model=8, n_blocks=1, top_k=2, kernel_sizes=(1, 3), window=2, dropout=0.0)
    model.set_input_scaling(spectra)
    typical = float(spectra.std(dim=0).median())  # the median point is one with structure
    assert torch.allclose(model.spectrum_std[:8], torch.full((8,), 0.1 * typical))
    assert torch.allclose(model.spectrum_std[8:], spectra[:, 8:].std(dim=0))


def test_default_training_keeps_the_last_epoch_and_scales_inputs_on_train(table):
    model, _, summary = fit_spt(table, "nonO", {**SMALL_CFG, "max_epochs": 3, "patience": None})
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 3
    train = (table["split"] == "train") & (table["element"] != "O")
    expected = torch.from_numpy(table["spectrum"][train]).mean(dim=0)
    assert torch.allclose(model.spectrum_mean, expected, atol=1e-5)
    assert torch.all(model.spectrum_std > 0)


def test_early_stopping_keeps_the_best_scoring_epoch(table):
    model, meta, summary = fit_spt(table, "nonO", {**SMALL_CFG, "max_epochs": 12, "patience": 3})
    history = summary["history"]
    scores = [row["val_score"] for row in history]
    best = max(scores)
    assert summary["monitor"] == "val_score"
    assert summary["best_epoch"] == max(i + 1 for i, v in enumerate(scores) if v == best)  # ties: later epoch
    assert summary["best_val_score"] == best
    stopped_early = summary["epochs_run"] < 12
    assert not stopped_early or summary["epochs_run"] - summary["best_epoch"] == 3
    # the kept weights are those of the best epoch: scoring them again on val gives the recorded score
    rows = (table["split"] == "val") & (table["element"] != "O")
    predicted = predict_table(model, meta, table["spectrum"][rows], table["energy"][rows], table["element"][rows])
    task_scores = []
    for spec in meta["targets"]:
        truth, guess = table["descriptors"][spec["name"]][rows], predicted[spec["name"]]["pred"]
        known = np.isfinite(truth)
        if spec["kind"] == "classification":
            task_scores.append(f1_score(truth[known], guess[known], average="weighted", zero_division=0))
        else:
            task_scores.append(1 - np.mean(((guess[known] - truth[known]) / spec["std"]) ** 2))
    assert np.mean(task_scores) == pytest.approx(best, abs=1e-4)
    by_loss = fit_spt(table, "nonO", {**SMALL_CFG, "max_epochs": 12, "patience": 3, "monitor": "val_loss"})[2]
    losses = [row["val_loss"] for row in by_loss["history"]]
    assert by_loss["best_val_loss"] == min(losses)
    with pytest.raises(ModelError, match="monitor"):
        fit_spt(table, "nonO", {**SMALL_CFG, "monitor": "val_acc"})


def test_same_seed_gives_identical_weights(table):
    cfg = {**SMALL_CFG, "max_epochs": 2, "dropout": 0.1, "noise_std": 0.01, "shift_ev": 0.5}
    first, _, _ = fit_spt(table, "nonO", cfg)
    second, _, _ = fit_spt(table, "nonO", cfg)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_checkpoint_round_trip_reproduces_predictions(table, trained, tmp_path):
    model, meta, _ = trained
    save_checkpoint(tmp_path / "spt.pt", model, {**meta, "dataset_hash": "abc123"})
    loaded, loaded_meta = load_checkpoint(tmp_path / "spt.pt")
    assert loaded_meta["dataset_hash"] == "abc123" and loaded_meta["elements"] == ["Co", "Mn"]
    inputs = (table["spectrum"][:30], table["energy"][:30], table["element"][:30])
    keep = table["element"][:30] != "O"
    inputs = tuple(column[keep] for column in inputs)
    original, reloaded = predict_table(model, meta, *inputs), predict_table(loaded, loaded_meta, *inputs)
    for name in original:
        np.testing.assert_array_equal(original[name]["pred"], reloaded[name]["pred"])
        if original[name]["proba"] is not None:
            np.testing.assert_array_equal(original[name]["proba"], reloaded[name]["proba"])


def test_bad_inputs_raise_model_error(table, trained):
    model, meta, _ = trained
    spectra, energy = table["spectrum"][:2].copy(), table["energy"][:2]
    spectra[1, 7] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        predict_table(model, meta, spectra, energy, ["Co", "Mn"])
    with pytest.raises(ModelError, match="grid"):
        predict_table(model, meta, table["spectrum"][:2, :50], table["energy"][:2, :50], ["Co", "Mn"])
    with pytest.raises(ModelError, match="Ni"):
        predict_table(model, meta, table["spectrum"][:1], table["energy"][:1], ["Ni"])
    with pytest.raises(ModelError):
        model(torch.full((1, GRID), float("nan")), torch.zeros(1, GRID), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ModelError, match="increase"):  # dmu/dE needs a strictly increasing energy axis
        model(torch.rand(1, GRID), torch.zeros(1, GRID), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ModelError):
        fit_spt(table, "nonO", {"d_modle": 8})


def test_metrics_ignore_nan_truth():
    assert metrics([1.0, 2.0, np.nan], [1.0, 1.0, 5.0], "classification") == \
        {"f1_weighted": pytest.approx(1 / 3), "accuracy": 0.5, "n": 2}
    regression = metrics([1.0, 2.0, 3.0, np.nan], [1.0, 2.0, 3.0, 0.0], "regression")
    assert regression == {"r2": 1.0, "mae": 0.0, "n": 3}


def test_rules_hold_torch_to_their_threads(monkeypatch):
    from xasengine.workflow import limit_threads

    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    try:
        limit_threads(2)
        assert torch.get_num_threads() == 2
        limit_threads(1)
        assert torch.get_num_threads() == 1
        import os
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_broadening_and_stretch_augmentation_move_and_widen_a_peak():
    """A Gaussian white line at +10 eV: broadening widens it and keeps its area; a stretch moves it to 10(1+s)."""
    from xasengine.train import augment, broaden

    energy = torch.linspace(-15, 40, 256).repeat(3, 1)
    peak = torch.exp(-0.5 * ((energy - 10) / 1.0) ** 2)
    step = float(energy[0, 1] - energy[0, 0])
    wider = broaden(peak, energy, torch.tensor([[0.0], [1.0], [2.0]]))
    assert torch.allclose(wider[0], peak[0], atol=1e-5)  # sigma 0: unchanged
    width = lambda row: float((row > row.max() / 2).sum()) * step  # full width at half maximum, eV
    assert width(peak[0]) == pytest.approx(2.355, abs=0.3)
    assert width(wider[1]) == pytest.approx(2.355 * 2 ** 0.5, abs=0.3)  # sigmas add in quadrature
    assert width(wider[2]) == pytest.approx(2.355 * 5 ** 0.5, abs=0.3)
    assert torch.allclose(wider.sum(dim=1), peak.sum(dim=1), rtol=1e-3)

    torch.manual_seed(0)
    stretched = augment(peak, energy, noise_std=0.0, shift_ev=0.0, stretch=0.1)
    centres = energy[0][stretched.argmax(dim=1)]
    assert torch.all((centres >= 10 * 0.9 - step) & (centres <= 10 * 1.1 + step))
    assert len(set(centres.tolist())) > 1  # each spectrum draws its own scale
    torch.manual_seed(0)
    assert torch.equal(augment(peak, energy, 0.0, 0.0), peak)  # all off: the spectrum as it was


def test_white_line_damping_lowers_only_what_rises_above_the_edge_step():
    """A step with a white line of height 1.8: damping pulls the peak towards 1 by a drawn fraction (never past
    it) and leaves the pre-edge and everything at or below the step as it was."""
    from xasengine.train import augment

    energy = torch.linspace(-15, 40, 256).repeat(64, 1)
    step = torch.sigmoid(energy / 0.5)
    spectrum = step + 0.8 * torch.exp(-0.5 * ((energy - 3) / 1.5) ** 2)
    torch.manual_seed(0)
    damped = augment(spectrum, energy, noise_std=0.0, shift_ev=0.0, damping=0.6)
    below = spectrum <= 1.0
    assert torch.equal(damped[below], spectrum[below])
    peak_before, peak_after = spectrum.max(dim=1).values, damped.max(dim=1).values
    assert torch.all(peak_after <= peak_before + 1e-6) and torch.all(peak_after >= 1.0)
    lowered = (peak_before - peak_after) / (peak_before - 1.0)  # the drawn fraction, uniform on [0, 0.6]
    assert float(lowered.max()) <= 0.6 + 1e-4 and float(lowered.max()) > 0.4 and float(lowered.min()) < 0.2


def test_typicality_ranks_unlike_spectra_above_unseen_simulated_ones(trained, table):
    """The checkpoint's domain model: spectra of unseen (test) materials rank like the validation ones they are
    compared with; a spectrum with a white line twice as high and a wiggle nobody trained on ranks at the top."""
    from xasengine.models.domain import ATYPICAL_PERCENTILE, fit_domain, typicality

    _, meta, _ = trained
    domain = meta["domain"]
    assert domain["reference_split"] == "val" and len(domain["components"]) == 16
    rows = (table["split"] == "test") & (table["element"] != "O")
    test = typicality(domain, table["spectrum"][rows])
    flagged = np.mean([t["atypical"] for t in test])
    assert flagged < 0.2 and np.median([t["percentile"] for t in test]) < 80
    odd = table["spectrum"][rows][:5] * 2.0 + 0.3 * np.sin(np.linspace(0, 12 * np.pi, GRID))
    assert all(t["atypical"] and t["percentile"] == 100.0 for t in typicality(domain, odd))
    assert typicality(domain, table["spectrum"][rows][:1])[0]["percentile"] <= 100.0
    small = fit_domain(table["spectrum"][:30], table["spectrum"][30:35])  # too few validation spectra
    assert small["reference_split"] == "train" and ATYPICAL_PERCENTILE == 95.0


def test_latent_distance_flags_spectra_the_model_maps_far_from_training(trained, table):
    """The checkpoint's latent domain: unseen simulated (test) spectra rank like the validation ones they are
    compared with; spectra unlike any training spectrum land far away in latent space and are flagged."""
    from xasengine.models.domain import fit_latent_domain, latent_typicality

    model, meta, _ = trained
    domain = meta["latent_domain"]
    assert domain["reference_split"] == "val" and domain["train"].dtype == torch.float16
    rows = (table["split"] == "test") & (table["element"] != "O")
    inputs = (table["energy"][rows], table["element"][rows])
    test = latent_typicality(domain, latent_vectors(model, meta, table["spectrum"][rows], *inputs))
    assert np.mean([t["ood"] for t in test]) < 0.25 and np.median([t["percentile"] for t in test]) < 85
    odd = table["spectrum"][rows] * 3.0 + 0.5 * np.sin(np.linspace(0, 12 * np.pi, GRID))
    flagged = latent_typicality(domain, latent_vectors(model, meta, odd.astype(np.float32), *inputs))
    assert np.mean([t["ood"] for t in flagged]) > 0.9
    assert np.median([t["distance"] for t in flagged]) > 2 * np.median([t["distance"] for t in test])
    rng = np.random.default_rng(0)
    small = fit_latent_domain(rng.normal(size=(30, 4)), rng.normal(size=(5, 4)))  # too few validation latents
    assert small["reference_split"] == "train" and len(small["reference_distances"]) == 30


def test_validation_temperature_keeps_classes_and_lowers_validation_nll(table, trained):
    """Probabilities are temperature-scaled on the validation split: same classes, lower validation NLL."""
    model, meta, summary = trained
    assert set(meta["temperatures"]) == {s["name"] for s in meta["targets"] if s["kind"] == "classification"}
    val = np.asarray(table["split"]) == "val"
    val &= np.asarray(table["element"]) != "O"
    inputs = (table["spectrum"][val], table["energy"][val], table["element"][val])
    raw, scaled = predict_table(model, meta, *inputs, calibrated=False), predict_table(model, meta, *inputs)
    for name, t in meta["temperatures"].items():
        np.testing.assert_array_equal(raw[name]["pred"], scaled[name]["pred"])
        spec = next(s for s in meta["targets"] if s["name"] == name)
        truth = np.asarray(table["descriptors"][name])[val]
        labelled = np.isfinite(truth) & np.isin(truth, spec["classes"])
        cls = np.searchsorted(spec["classes"], truth[labelled])
        def nll(p):
            return -np.log(np.clip(p[labelled][np.arange(labelled.sum()), cls], 1e-12, None)).mean()
        if summary["calibration"][name].get("note"):
            assert t == 1.0
            continue
        assert nll(scaled[name]["proba"]) <= nll(raw[name]["proba"]) + 1e-6
        assert summary["calibration"][name]["val_ece_after"] <= summary["calibration"][name]["val_ece_before"] + 0.02
