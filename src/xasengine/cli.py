"""Console entry point `xasengine`: stage errors become one line on stderr and exit code 1."""

from __future__ import annotations

import argparse
import sys

from .errors import XasEngineError


def _validate(args) -> None:
    from .config import read_config_file, validate_or_exit

    config = validate_or_exit(read_config_file(args.config))  # one stderr line per problem, exit 1
    print(f"{args.config}: valid (feff preset {config['feff']['preset']}, source {config['structures']['source']})")


def _export_cache(args) -> None:
    from pathlib import Path

    from .errors import FeffRunError
    from .feff.cache import FeffCache, export_shipped
    from .readers import read_json

    for folder in (args.cache_dir, args.referenced_by):
        if folder and not Path(folder).is_dir():
            raise FeffRunError(f"no such folder: {folder}")
    out = Path(args.out)
    shipped = FeffCache(out.parent / "_none_", out.parent).shipped_index() if out.parent.is_dir() else {}
    keys = FeffCache(args.cache_dir).keys()
    if args.referenced_by:
        used = {site["feff_hash"] for doc in Path(args.referenced_by).glob("*.json")
                for site in read_json(doc)["sites"] if site["status"] == "ok"}
        keys = [k for k in keys if k in used]
    new = [k for k in keys if k not in shipped]
    if not new:
        print(f"nothing to pack: every entry of {args.cache_dir} is already in {out.parent}")
        return
    n = export_shipped(args.cache_dir, out, keys=new)
    print(f"packed {n} new FEFF results into {out}")


def _newly_cached(args) -> None:
    from pathlib import Path

    from .config import load_config
    from .feff.cache import FeffCache, newly_cached
    from .shards import bucket_of

    config = load_config(args.config)
    feff = config["feff"]
    results = Path(args.results)
    stale = newly_cached(results / "feff", FeffCache(feff["cache_dir"], feff["shipped_cache"]))
    for sid in stale:
        # The shard holding the structure goes too: Snakemake does not rebuild an existing shard merely
        # because an input went missing (seen with --rerun-triggers mtime), so this forces just that bucket.
        shard = results / "shards" / f"shard-{bucket_of(sid, config['shards']['n_buckets']):03d}.h5"
        outputs = [results / stage / f"{sid}.json" for stage in ("sites", "descriptors", "feff")] + [shard]
        if args.forget:
            for path in outputs:
                path.unlink(missing_ok=True)
        print(sid)
    verb = "forgotten: snakemake recomputes just these" if args.forget else "rerun them with --forget"
    print(f"{len(stale)} structures have not-computed sites that a FEFF cache now holds"
          + (f" ({verb})" if stale else ""), file=sys.stderr)


def _predict(args) -> int:
    from .predict import predict_cli

    return predict_cli(args)


def _generate(args) -> int:
    from .generate import generate_cli

    return generate_cli(args)


def _amorphous_cells(args) -> int:
    from .errors import XasEngineError
    from .structures.amorphous import describe_cells

    try:
        lines = describe_cells(args.dir)
    except XasEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines) if lines else f"no amorphous cells in {args.dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xasengine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate-config", help="check a config file against the schema")
    p.add_argument("config")
    p.set_defaults(func=_validate)
    p = sub.add_parser("export-cache", help="pack FEFF cache entries not yet shipped beside --out into one HDF5 file")
    p.add_argument("--cache-dir", default="results/feff_cache")
    p.add_argument("--out", required=True)
    p.add_argument("--referenced-by", default=None,
                   help="only entries used by the FEFF results in this folder (e.g. results/feff)")
    p.set_defaults(func=_export_cache)
    p = sub.add_parser("newly-cached", help="structures whose not-computed sites (feff.cached_only) are now in a "
                       "FEFF cache, e.g. after pulling new shipped parts; --forget removes their results")
    p.add_argument("--config", default="config.yaml", help="config naming the FEFF caches (feff.cache_dir, shipped_cache)")
    p.add_argument("--results", default="results")
    p.add_argument("--forget", action="store_true", help="delete these structures' sites/descriptors/feff JSON and their shards")
    p.set_defaults(func=_newly_cached)
    p = sub.add_parser("predict", help="descriptors of measured or simulated spectra from a trained SPT")
    p.add_argument("inputs", nargs="+", help="spectrum files (XDI or two-column), folders of them, or HDF5 shards")
    p.add_argument("--model", required=True, help="checkpoint of a trained SPT (results/models/...)")
    p.add_argument("--element", help="absorbing element (default: from the XDI header)")
    p.add_argument("--edge", default=None, help="absorption edge (default: from the XDI header, else K)")
    p.add_argument("--mode", choices=["auto", "transmission", "fluorescence", "mu"], default="auto",
                   help="how mu is formed from XDI columns: ln(i0/itrans), ifluor/i0, or a mu column (auto: from "
                        "the columns present)")
    p.add_argument("--e0-shift", type=float, default=None,
                   help="eV added to the energy of scans without a reference foil channel (calibration by hand)")
    p.add_argument("--athena-group", default=None, help="only this group of an Athena .prj (default: every group)")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--config", default=None, help="config whose `spectra` section prepared the training data")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw each predicted input with its prediction and 3 nearest training spectra")
    p.add_argument("--ood-percentile", type=float, default=95.0,
                   help="flag a prediction out of distribution ('ood') when its SPT-latent distance to the training "
                        "set exceeds this percentile of the validation spectra's (default 95)")
    p.add_argument("--os-reading", choices=["ladder", "fusion", "shape"], default="ladder",
                   help="how a calibrated measured scan's OS is read: 'ladder' (default) its edge on FEFF's ladder of "
                        "states, placed by the measured standards, with a metal gate on E0 (the SPT's shape where an "
                        "element has fewer than two oxidised standards); 'fusion' the SPT's shape times the edge; "
                        "'shape' the SPT alone. The SPT's own probabilities stay in the record")
    p.add_argument("--edge-fusion", action="store_true", help="the same as --os-reading fusion")
    p.add_argument("--edge-map", default=None,
                   help="edge map of the ladder and fusion readings (default: edge_map.json beside the checkpoints, "
                        "written by the workflow's edge_map rule)")
    p.set_defaults(func=_predict)
    p = sub.add_parser("generate", help="candidate coordination shells (XYZ) for spectra from the diffusion model")
    p.add_argument("inputs", nargs="+", help="spectrum files (XDI or two-column), folders of them, or HDF5 shards")
    p.add_argument("--model", required=True, help="checkpoint of the trained diffusion model (results/models/diffusion.pt)")
    p.add_argument("--out", required=True, help="folder for the XYZ / extended XYZ files")
    p.add_argument("--n-samples", type=int, default=8, help="shells per spectrum")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    p.add_argument("--element", help="absorbing element (default: from the XDI header)")
    p.add_argument("--edge", default=None, help="absorption edge (default: from the XDI header, else K)")
    p.add_argument("--mode", choices=["auto", "transmission", "fluorescence", "mu"], default="auto",
                   help="how mu is formed from XDI columns (as for predict)")
    p.add_argument("--e0-shift", type=float, default=None,
                   help="eV added to the energy of scans without a reference foil channel")
    p.add_argument("--athena-group", default=None, help="only this group of an Athena .prj")
    p.add_argument("--config", default=None, help="config whose `spectra` section prepared the training data")
    p.add_argument("--cn", type=int, default=None,
                   help="ask every shell for this first-shell CN (default: the joint SPT's CN of each spectrum)")
    p.add_argument("--spt", default=None,
                   help="joint SPT checkpoint whose CN the shells are asked for (default: spt-joint-nonO.pt beside "
                        "--model, if there)")
    p.add_argument("--no-cn", action="store_true", help="sample from the spectrum alone, no CN asked")
    p.set_defaults(func=_generate)
    p = sub.add_parser("amorphous-cells", help="list and validate amorphous cells (inputs, protocol, energy, key)")
    p.add_argument("--dir", default="resources/structures/amorphous")
    p.set_defaults(func=_amorphous_cells)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except XasEngineError as exc:
        print(f"xasengine: error [{exc.stage}]: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
