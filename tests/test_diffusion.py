"""The equivariant diffusion model: symmetry of the denoiser, the shell metrics, learning from real shells, the DAG
rules and `xasengine generate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3
from pymatgen.core import Lattice, Structure

from xasengine.environments import neighbour_shell, read_environments
from xasengine.models.diffusion import DEFAULTS, ShellDiffusion, dilate_first_shell, fit_diffusion, resolve_cfg
from xasengine.models.shell_metrics import matched_rmsd, shell_scores
from xasengine.errors import ModelError


def _noisy_inputs(b=3, n=9, s=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(b, n, 3, generator=g, dtype=torch.float64)
    pos[:, 0] = 0.0
    h = torch.randn(b, n, s, generator=g, dtype=torch.float64)
    t = torch.rand(b, generator=g, dtype=torch.float64)
    spectrum = torch.randn(b, 16, generator=g, dtype=torch.float64)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, -2:] = False  # a shell with two padded neighbours
    return pos, h, t, spectrum, mask


@pytest.fixture(scope="module")
def denoiser():
    torch.manual_seed(0)
    return ShellDiffusion([3, 8, 27, 28], 16, DEFAULTS).double().denoiser.eval()


@pytest.mark.parametrize("mirror", [False, True])
def test_rotating_or_reflecting_the_shell_rotates_the_predicted_noise(denoiser, mirror):
    pos, h, t, spectrum, mask = _noisy_inputs()
    drop = torch.tensor([False, True, False])
    rot = o3.rand_matrix(dtype=torch.float64) * (-1.0 if mirror else 1.0)
    ex, eh = denoiser(pos, h, t, spectrum, mask, drop)
    ex_r, eh_r = denoiser(pos @ rot.T, h, t, spectrum, mask, drop)
    assert torch.allclose(ex @ rot.T, ex_r, atol=1e-9)
    assert torch.allclose(eh, eh_r, atol=1e-9)
    assert ex.abs().max() > 1e-3  # not trivially zero


def test_permuting_the_neighbours_permutes_the_output(denoiser):
    pos, h, t, spectrum, mask = _noisy_inputs()
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(pos.shape[1] - 1)])
    drop = torch.zeros(3, dtype=torch.bool)
    ex, eh = denoiser(pos, h, t, spectrum, mask, drop)
    ex_p, eh_p = denoiser(pos[:, perm], h[:, perm], t, spectrum, mask[:, perm], drop)
    assert torch.allclose(ex[:, perm], ex_p, atol=1e-10)
    assert torch.allclose(eh[:, perm], eh_p, atol=1e-10)


def _rocksalt(a=4.17, metal="Ni"):
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [metal, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_the_ball_clip_keeps_every_sampled_neighbour_within_its_radius():
    """clip_radius bounds the denoised estimate by its length, not per coordinate: the last reverse step returns
    that estimate, so every neighbour of an (untrained, hence wild) model ends within the radius, while the box
    clip lets them reach its corners."""
    torch.manual_seed(0)
    model = ShellDiffusion([3, 8, 27, 28], 16, DEFAULTS | {"sample_steps": 10})
    spectra, absorber = np.random.default_rng(0).random((2, 16)).astype(np.float32), np.array([27, 28])
    _, boxed = model.sample(spectra, absorber, 6, 3, seed=1)
    _, balled = model.sample(spectra, absorber, 6, 3, seed=1, clip_radius=3.0)
    assert np.linalg.norm(balled, axis=-1).max() <= 3.0 + 1e-4
    assert np.linalg.norm(boxed, axis=-1).max() > 3.0 and np.abs(boxed).max() <= 8.0 + 1e-4


def test_the_rock_salt_shell_is_six_oxygens_then_twelve_cations():
    species, offsets = neighbour_shell(_rocksalt(), 0, 12, 5.0)
    dist = np.linalg.norm(offsets, axis=1)
    assert list(species[:6]) == [8] * 6 and np.allclose(dist[:6], 4.17 / 2, atol=1e-3)
    assert list(species[6:]) == [28] * 6 and np.allclose(dist[6:], 4.17 / np.sqrt(2), atol=1e-3)
    species, offsets = neighbour_shell(_rocksalt(), 0, 12, 2.5)  # fewer than K within the radius: padded
    assert (species > 0).sum() == 6 and np.isnan(offsets[6:]).all()


def test_matched_rmsd_ignores_rotation_mirror_and_order_but_not_distortion():
    species, offsets = neighbour_shell(_rocksalt(), 0, 12, 5.0)
    rot = o3.rand_matrix(dtype=torch.float64).numpy() * -1.0
    perm = np.random.default_rng(1).permutation(12)
    assert matched_rmsd(species[perm], (offsets @ rot.T)[perm], species, offsets) < 1e-6
    stretched = offsets * 1.05
    assert matched_rmsd(species, stretched, species, offsets) > 0.05
    same = shell_scores(species, offsets @ rot.T, species, offsets, cutoff=2.6)
    assert same["cn_true"] == 6 and same["cn_exact"] == 1.0 and same["bond_error"] < 1e-9
    assert same["angle_w1"] < 1e-6 and same["species_match"] == 1.0


def test_unknown_model_setting_is_one_clear_error():
    with pytest.raises(ModelError, match="unknown diffusion setting"):
        resolve_cfg({"layerz": 2})


def _two_kinds_of_site():
    """Octahedral (rock salt) and tetrahedral (spinel Co3O4, 8a) Co: real shells, two distinct 'spectra'."""
    spinel = Structure.from_spacegroup("Fd-3m", Lattice.cubic(8.08), ["Co", "Co", "O"],
                                       [[0, 0, 0], [0.625, 0.625, 0.625], [0.3881, 0.3881, 0.3881]])
    tetra = next(i for i, s in enumerate(spinel) if s.specie.symbol == "Co" and len(spinel.get_neighbors(s, 2.3)) == 4)
    shells = [neighbour_shell(_rocksalt(4.26, "Co"), 0, 8, 5.0), neighbour_shell(spinel, tetra, 8, 5.0)]
    species = np.array([s for s, _ in shells] * 6)
    offsets = np.array([o for _, o in shells] * 6)
    absorber = np.array([27, 27] * 6)  # the same absorber: only the spectrum tells the two apart
    spectra = np.array([np.r_[np.ones(8), np.zeros(8)], np.r_[np.zeros(8), np.ones(8)]] * 6, dtype=np.float32)
    return species, offsets, absorber, spectra


def test_a_model_trained_on_a_few_shells_reproduces_them_better_than_the_unconditioned_prior():
    species, offsets, absorber, spectra = _two_kinds_of_site()
    cn_true = [6, 4]
    first_shell_o = [((s == 8) & (np.linalg.norm(o, axis=1) < 2.6)).sum() for s, o in zip(species[:2], offsets[:2])]
    assert first_shell_o == cn_true
    model, summary = fit_diffusion(species, offsets, absorber, spectra,
                                   cfg={"epochs": 800, "batch_size": 12, "lr": 3e-3, "ema": 0.98, "cond_drop": 0.3,
                                        "hidden_scalars": 16, "hidden_vectors": 4, "layers": 2, "sample_steps": 40,
                                        "guidance": 2.0, "position_scale": 2.5})
    assert summary["history"][-1]["train_loss"] < summary["history"][0]["train_loss"]
    # the prior for Co mixes both environments; the spectrum should pick one
    ask_spectra, ask_absorber = spectra[:2], np.array([27, 27])
    cond_s, cond_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3)
    prior_s, prior_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, unconditional=True)

    def cn_error(gen_s, gen_x):
        err = []
        for i in range(2):
            for j in range(gen_s.shape[1]):
                cn = ((gen_s[i, j] == 8) & (np.linalg.norm(gen_x[i, j], axis=1) < 2.6)).sum()
                err.append(abs(cn - cn_true[i]))
        return np.mean(err)

    def mean_cn(gen_s, gen_x, i):
        return np.mean([((gen_s[i, j] == 8) & (np.linalg.norm(gen_x[i, j], axis=1) < 2.6)).sum()
                        for j in range(gen_s.shape[1])])

    print("margins", cn_error(cond_s, cond_x), cn_error(prior_s, prior_x),
          mean_cn(cond_s, cond_x, 0) - mean_cn(cond_s, cond_x, 1))
    assert cn_error(cond_s, cond_x) < cn_error(prior_s, prior_x)
    # the octahedral spectrum gets clearly more first-shell O than the tetrahedral one (6 vs 4 in truth)
    assert mean_cn(cond_s, cond_x, 0) - mean_cn(cond_s, cond_x, 1) > 0.75
    # asked for the true CN through the first-shell labels, the shells hit it more often than from the spectrum
    # alone; asked for the other site's CN, the same spectrum's shells follow the request
    asked_s, asked_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, first_shell_counts=cn_true)
    swapped_s, swapped_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, first_shell_counts=cn_true[::-1])
    print("asked", cn_error(asked_s, asked_x), mean_cn(swapped_s, swapped_x, 0), mean_cn(swapped_s, swapped_x, 1))
    assert cn_error(asked_s, asked_x) < cn_error(cond_s, cond_x) or cn_error(asked_s, asked_x) == 0
    assert mean_cn(swapped_s, swapped_x, 0) < mean_cn(asked_s, asked_x, 0)
    assert mean_cn(swapped_s, swapped_x, 1) > mean_cn(asked_s, asked_x, 1)
    # a shell that misses its asked CN is drawn again: every first-draw hit is kept as drawn, and the redraws
    # only add hits (bond sizing off, so that the counts are the sampler's own)
    once_s, once_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, first_shell_counts=cn_true, cn_retries=0,
                                  head_bond=False)
    again_s, again_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, first_shell_counts=cn_true,
                                    cn_retries=3, head_bond=False)

    def hits(gen_s, gen_x):
        return (model.first_shell_count(gen_s.reshape(-1, 8), gen_x.reshape(-1, 8, 3))
                == np.repeat(cn_true, 6)).reshape(2, 6)

    print("hits", hits(once_s, once_x).sum(), hits(again_s, again_x).sum())
    np.testing.assert_array_equal(again_x[hits(once_s, once_x)], once_x[hits(once_s, once_x)])
    assert (hits(again_s, again_x) | ~hits(once_s, once_x)).all()
    assert hits(again_s, again_x).sum() >= hits(once_s, once_x).sum()
    # inpainting the labelled nodes' species: every node asked to be first-shell comes out as oxygen
    painted_s, painted_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, first_shell_counts=cn_true,
                                        inpaint_ligand=True)
    for i, cn in enumerate(cn_true):
        assert np.all(painted_s[i, :, :cn] == 8)
    assert np.isfinite(painted_x).all()
    # eta is a per-call choice: deterministic DDIM (eta 0) takes another path from the same start and leaves the
    # model's configured eta alone
    _, ddim_x = model.sample(ask_spectra, ask_absorber, 8, 6, seed=3, eta=0.0)
    assert model.cfg["eta"] == 1.0 and np.isfinite(ddim_x).all()
    assert not np.allclose(ddim_x, cond_x)


def test_tiny_workflow_trains_samples_and_reports_the_diffusion_model(tiny_workflow):
    results = tiny_workflow.root / "results"
    env = read_environments(sorted((results / "environments").glob("env-*.h5")))
    assert set(env["element"]) <= {"Co", "Mn", "Ni"} and len(env["element"]) > 0
    import json

    metrics = json.loads((results / "metrics" / "diffusion.json").read_text())
    assert set(metrics["methods"]) == {"diffusion | SPT CN", "diffusion (spectrum only)", "prior (no spectrum)",
                                       "template matching"} and metrics["headline"] == "diffusion | SPT CN"
    assert 0 <= metrics["spt_cn"]["labels_agree"] <= 1 and metrics["n_samples_baselines"] >= 1
    assert metrics["sample_seconds_per_spectrum"] > 0
    # sampled neighbours stay within the radius the shells were cut at (the ball clip's default)
    import h5py

    from xasengine.config import validate_config

    radius = validate_config(tiny_workflow.config)["diffusion"]["radius"]

    with h5py.File(results / "diffusion" / "samples.h5") as fh:
        assert metrics["clip_radius"] == radius and np.linalg.norm(fh["offsets"][()], axis=-1).max() <= radius + 1e-4
    assert metrics["head_bond"] is True  # the default recipe has the head, so its bond reading sizes the shells
    consistency = json.loads((results / "metrics" / "diffusion_consistency.json").read_text())
    site = consistency["sites"][0]
    assert site.get("error_true_cut") is None and -1.0 <= site["cosine_true_cut"] <= 1.0
    # the true shell cut to K atoms resembles its own full-crystal spectrum
    assert site["pearson_true_cut"] > 0.5
    html = (results / "reports" / "diffusion.html").read_text()
    assert "template matching" in html and "Finishing: a shell that misses" in html
    assert (results / "reports" / "diffusion_shells.png").stat().st_size > 10_000


def test_a_sampling_knob_reevaluates_without_retraining(tiny_workflow):
    from conftest import tiny_config

    wf = tiny_workflow
    base = tiny_config()
    sampling = {"guidance": 0.5, "eta": 0.5, "clip_radius": 5.0, "head_bond": False}
    changed = tiny_config(diffusion={"n_samples": 3, "model": base["diffusion"]["model"] | sampling})
    wf.set_config(changed)
    try:
        planned = wf.planned()
    finally:
        wf.set_config(base)
    assert planned["evaluate_diffusion"] == 1 and "train_diffusion" not in planned, planned
    wf.set_config(tiny_config(diffusion={"model": base["diffusion"]["model"] | {"epochs": 4}}))
    try:
        assert wf.planned()["train_diffusion"] == 1
    finally:
        wf.set_config(base)


def test_generate_writes_xyz_shells_and_names_a_bad_input(tiny_workflow, tmp_path):
    results = tiny_workflow.root / "results"
    shard = sorted((results / "shards").glob("shard-*.h5"))[0]
    model = results / "models" / "diffusion.pt"
    proc = subprocess.run([sys.executable, "-m", "xasengine.cli", "generate", str(shard), "--model", str(model),
                           "--out", str(tmp_path / "gen"), "--n-samples", "3"], capture_output=True, text=True)
    frames = sorted((tmp_path / "gen").glob("*.extxyz"))
    assert frames, proc.stderr
    text = frames[0].read_text()
    assert text.count("Properties=species:S:1:pos:R:3:absorber:L:1") == 3
    assert len(sorted((tmp_path / "gen").glob("*-sample*.xyz"))) == 3 * len(frames)
    assert "CN asked" in text and "(joint SPT" in text  # the SPT beside diffusion.pt gives each spectrum's CN
    assert "first-shell O scaled to the model's bond reading" in text  # the head's bond, said per frame
    asked = subprocess.run([sys.executable, "-m", "xasengine.cli", "generate", str(shard), "--model", str(model),
                            "--out", str(tmp_path / "gen4"), "--n-samples", "1", "--cn", "4"],
                           capture_output=True, text=True)
    # (exit 1: the shard's O and Li sites are named as absorbers the model was not trained on)
    assert sorted((tmp_path / "gen4").glob("*.extxyz")), asked.stderr
    assert "CN asked 4 (--cn)" in sorted((tmp_path / "gen4").glob("*.extxyz"))[0].read_text()
    bad = tmp_path / "empty.xdi"
    bad.write_text("# nothing\n")
    proc = subprocess.run([sys.executable, "-m", "xasengine.cli", "generate", str(bad), "--model", str(model),
                           "--out", str(tmp_path / "gen2")], capture_output=True, text=True)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and str(bad) in errors[0] and "Traceback" not in proc.stderr


def test_every_model_default_is_a_schema_knob_and_a_misspelt_one_fails_before_anything_runs():
    import yaml

    from xasengine.config import config_problems

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    assert set(schema["properties"]["diffusion"]["properties"]["model"]["properties"]) == set(DEFAULTS)
    _, problems = config_problems({"diffusion": {"model": {"layerz": 2}, "n_samples": 0}})
    assert any("diffusion.model.layerz" in p for p in problems) and any("n_samples" in p for p in problems)


def test_the_auxiliary_head_learns_the_shell_invariants_that_rotation_leaves_alone():
    species, offsets, absorber, spectra = _two_kinds_of_site()
    model, _ = fit_diffusion(species, offsets, absorber, spectra,
                             cfg={"epochs": 150, "batch_size": 12, "lr": 3e-3, "ema": 0.9, "hidden_scalars": 16,
                                  "hidden_vectors": 4, "layers": 1, "invariant_weight": 1.0, "low_noise_power": 2.0})
    pos, _, mask = model.encode(species[:2], offsets[:2], absorber[:2])
    labels = model.first_shell(species[:2], offsets[:2])
    truth = model.shell_invariants(pos, mask, labels)
    torch.manual_seed(1)
    rotation = o3.rand_matrix() * -1.0  # a rotation-reflection
    turned = model.shell_invariants(pos @ rotation.T, mask, labels)
    torch.testing.assert_close(turned, truth, atol=1e-5, rtol=1e-5)
    assert torch.allclose(truth[:, -1] * 6, torch.tensor([6.0, 4.0]))  # CN/6 of octahedral and tetrahedral Co
    with torch.no_grad():
        guess = model.denoiser.invariants(model.denoiser.spectrum(torch.as_tensor(spectra[:2])))
    # the CN the embedding reads from each spectrum is nearer its own site's than the other's
    assert abs(guess[0, -1] - truth[0, -1]) < abs(guess[0, -1] - truth[1, -1])
    assert abs(guess[1, -1] - truth[1, -1]) < abs(guess[1, -1] - truth[0, -1])
    # at sampling the head's bond sizes the first shell: same raw sample (same seed), same directions and count,
    # mean first-shell O distance = the head's reading; the prior (no spectrum) is left as sampled
    bond = model.head_bond_length(spectra[:2])
    sized_s, sized_x = model.sample(spectra[:2], absorber[:2], 8, 5, seed=2, first_shell_counts=[6, 4])
    raw_s, raw_x = model.sample(spectra[:2], absorber[:2], 8, 5, seed=2, first_shell_counts=[6, 4], head_bond=False)
    assert np.array_equal(sized_s, raw_s) and not np.allclose(sized_x, raw_x)
    raw_d, sized_d = np.linalg.norm(raw_x, axis=-1), np.linalg.norm(sized_x, axis=-1)
    bonded = (raw_s == 8) & (raw_d < model.cfg["first_shell_cutoff"])
    assert bonded.any()  # this briefly trained model's shells are rough: not every one has a first-shell O
    for i, j in np.ndindex(2, 5):
        if bonded[i, j].any():
            np.testing.assert_allclose(sized_d[i, j][bonded[i, j]].mean(), bond[i], rtol=1e-6)
        np.testing.assert_allclose(sized_x[i, j][~bonded[i, j]], raw_x[i, j][~bonded[i, j]])
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(sized_x)[bonded], unit(raw_x)[bonded], atol=1e-9)
    prior = model.sample(spectra[:2], absorber[:2], 8, 5, seed=2, unconditional=True)[1]
    np.testing.assert_array_equal(prior, model.sample(spectra[:2], absorber[:2], 8, 5, seed=2, unconditional=True,
                                                      head_bond=False)[1])
    # the default recipe has the head (chosen on validation); weight 0 has none, so its checkpoints keep their keys
    assert ShellDiffusion([8, 27], 16, DEFAULTS).denoiser.invariants is not None
    assert ShellDiffusion([8, 27], 16, DEFAULTS | {"invariant_weight": 0.0}).denoiser.invariants is None


def test_dilating_the_first_shell_touches_only_its_ligands_and_commutes_with_rotation():
    """Two shells: O at 1.9/2.1 Å and one beyond the cutoff, a cation inside it; the dilation sets the bonded O's
    mean distance, leaves the others alone, and a rotation-reflection before it equals one after it."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2, 4, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    offsets = directions * np.array([1.9, 2.1, 2.9, 2.4])[None, :, None]
    species = np.array([[8, 8, 8, 28], [8, 8, 8, 8]])
    out = dilate_first_shell(species, offsets, np.array([2.05, 2.2]), cutoff=2.6)
    dist = np.linalg.norm(out, axis=-1)
    np.testing.assert_allclose(dist[0], [1.9 * 2.05 / 2.0, 2.1 * 2.05 / 2.0, 2.9, 2.4])
    np.testing.assert_allclose(dist[1, [0, 1, 3]].mean(), 2.2)
    assert dist[1, 2] == pytest.approx(2.9)
    q = o3.rand_matrix().double().numpy() * -1.0
    np.testing.assert_allclose(dilate_first_shell(species, offsets @ q.T, np.array([2.05, 2.2]), 2.6), out @ q.T,
                               atol=1e-12)
    # a shell with no first-shell O is returned as it came
    lone = np.array([[28, 28, 28, 28]])
    np.testing.assert_array_equal(dilate_first_shell(lone, offsets[:1], np.array([2.0]), 2.6), offsets[:1])


def test_a_version_2_checkpoint_without_the_head_still_loads_and_an_older_one_is_named(tmp_path):
    """Version 3 only turned the auxiliary head on by default; a version-2 checkpoint's cfg never had the key."""
    import json

    from xasengine.models.diffusion import load_diffusion, save_diffusion

    old_cfg = {k: v for k, v in DEFAULTS.items() if k not in ("invariant_weight", "clip_radius")}
    model = ShellDiffusion([8, 27], 16, old_cfg)
    save_diffusion(tmp_path / "v2.pt", model, {})
    for version, name in ((2, "v2.pt"), (1, "v1.pt")):
        blob = torch.load(tmp_path / "v2.pt", weights_only=True)
        info = json.loads(blob["json"]) | {"version": version}
        torch.save({"state": blob["state"], "json": json.dumps(info)}, tmp_path / name)
    loaded, _ = load_diffusion(tmp_path / "v2.pt")
    assert loaded.denoiser.invariants is None
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ModelError, match="v1.pt: diffusion checkpoint of model version 1"):
        load_diffusion(tmp_path / "v1.pt")
