"""Load and validate config.yaml against workflow/schemas/config.schema.yaml, filling defaults."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError
from .readers import UnreadableFile, read_text

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _with_defaults(validator_class):
    """A validator that also writes schema defaults into the instance (as snakemake's validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = json.loads(json.dumps(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _schema_lines(err) -> list[str]:
    where = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(known))
        hint = f"; known keys: {', '.join(known)}" if known else ""
        return [f"{where + '.' if where else ''}{key}: unknown key{hint}" for key in unknown]
    message = err.message
    if err.validator == "type" and isinstance(err.instance, str) and _parses_as_float(err.instance):
        message += f" (YAML reads {err.instance} as text: write it with a dot, e.g. {float(err.instance)!r})"
    return [f"{where or '<top level>'}: {message}"]


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _window_problem(key: str, window) -> list[str]:
    if isinstance(window, list) and len(window) == 2 and _numbers(*window) and window[0] >= window[1]:
        return [f"{key}: window {window} must go from low to high energy"]
    return []


# Elements CHGNet's pretrained potential was trained on (Materials Project trajectories): H..Bi plus Ac..Pu;
# here because config checks compositions before any relaxation or MD job and relax cannot be imported here.
CHGNET_MAX_Z = 94


def semantic_problems(cfg: dict) -> list[str]:
    """Checks across keys the schema cannot express; each would otherwise fail late inside a job."""
    problems = []
    split = cfg.get("split", {})
    val, test = split.get("val_fraction", 0), split.get("test_fraction", 0)
    if _numbers(val, test) and val + test >= 1:
        problems.append(f"split.test_fraction: val_fraction + test_fraction = {val + test:g} leaves no training "
                        "data (must be < 1)")
    spectra = cfg.get("spectra", {})
    grids = {"spectra.grid": spectra.get("grid", {})}
    grids |= {f"spectra.grid_overrides.{edge}": {**grids["spectra.grid"], **g}
              for edge, g in spectra.get("grid_overrides", {}).items() if isinstance(g, dict)}
    for key, grid in grids.items():
        start, stop = grid.get("start"), grid.get("stop")
        if _numbers(start, stop) and start >= stop:
            problems.append(f"{key}: start ({start:g} eV) must be below stop ({stop:g} eV)")
    problems += _window_problem("spectra.pre_edge", spectra.get("pre_edge"))
    problems += _window_problem("spectra.post_edge", spectra.get("post_edge"))
    pre, post = spectra.get("pre_edge"), spectra.get("post_edge")
    if (isinstance(pre, list) and isinstance(post, list) and len(pre) == len(post) == 2
            and _numbers(*pre, *post) and pre[1] > post[0]):
        problems.append(f"spectra.pre_edge: window {pre} overlaps spectra.post_edge {post}")
    structures = cfg.get("structures", {})
    allowed = set(structures.get("allowed_elements", []))
    outside = sorted(set(cfg.get("sites", {}).get("absorbers", [])) - allowed)
    if allowed and outside:
        problems.append(f"sites.absorbers: {', '.join(outside)} not in structures.allowed_elements")
    outside = sorted(set(structures.get("mp", {}).get("elements", [])) - allowed)
    if allowed and outside and structures.get("source") == "mp":
        problems.append(f"structures.mp.elements: {', '.join(outside)} not in structures.allowed_elements")
    problems += _amorphous_problems(cfg.get("amorphous", {}), allowed)
    feff = cfg.get("feff", {})
    if feff.get("engine") == "external" and isinstance(feff.get("executable"), str):
        import shlex
        import shutil

        command = shlex.split(feff["executable"])[:1]
        if not command or shutil.which(command[0]) is None:
            problems.append(f"feff.executable: {feff['executable']!r} not found on PATH (needed by feff.engine: external)")
    return problems


def _amorphous_problems(amo: dict, allowed: set[str]) -> list[str]:
    """Compositions inside the chemical space and CHGNet's elements, melt above final, CHGNet installed."""
    if not amo.get("enabled"):
        return []
    from pymatgen.core import Composition

    problems = []
    seeds = amo.get("seeds", [])
    if amo.get("finetune_cells", 1) >= len(set(seeds)):
        problems.append(f"amorphous.finetune_cells: {amo.get('finetune_cells', 1)} of {len(set(seeds))} cells per "
                        "composition leaves none held out for the amorphous report (must be < len(seeds))")
    for formula in amo.get("compositions", []):
        try:
            elements = {el.symbol: el.Z for el in Composition(formula).elements}
        except (ValueError, KeyError) as exc:
            problems.append(f"amorphous.compositions: {formula!r} is not a formula ({exc})")
            continue
        beyond = sorted(el for el, z in elements.items() if z > CHGNET_MAX_Z)
        if beyond:
            problems.append(f"amorphous.compositions: {formula} has {', '.join(beyond)}, not covered by CHGNet")
        outside = sorted(set(elements) - allowed) if allowed else []
        if outside:
            problems.append(f"amorphous.compositions: {formula} has {', '.join(outside)}, "
                            "not in structures.allowed_elements")
    protocol = amo.get("protocol", {})
    melt, final = protocol.get("melt_K", 3000.0), protocol.get("final_K", 300.0)
    if _numbers(melt, final) and melt <= final:
        problems.append(f"amorphous.protocol.melt_K: {melt:g} K must exceed final_K ({final:g} K)")
    import importlib.util

    if importlib.util.find_spec("chgnet") is None:
        problems.append("amorphous.enabled: CHGNet is not installed (pip install chgnet==0.4.2); "
                        "the cells are looked up by potential version")
    return problems


def config_problems(config: dict | None) -> tuple[dict, list[str]]:
    """The config with defaults filled in, and one line per problem (schema first, then cross-key checks)."""
    config = json.loads(json.dumps(config or {}))
    validator = _with_defaults(jsonschema.Draft202012Validator)(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    lines = [line for err in errors for line in _schema_lines(err)]
    if not lines:
        lines = semantic_problems(config)
    return config, [f"config: {line}" for line in lines]


def validate_config(config: dict | None) -> dict:
    """Fill defaults and check every knob; a ConfigError names the first offending key (all are in .problems)."""
    config, problems = config_problems(config)
    if problems:
        err = ConfigError(problems[0])
        err.problems = problems
        raise err
    return config


def canonical_order(value: Any) -> Any:
    """Mappings with their keys sorted, all the way down.

    Snakemake compares a rule's params as written, so the same settings in another key order (a config file
    rewritten by a tool, a section moved) would otherwise rerun every job that takes a config section."""
    if isinstance(value, dict):
        return {key: canonical_order(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical_order(item) for item in value]
    return value


def validate_or_exit(config: dict | None) -> dict:
    """For the Snakefile and the CLI: every problem on its own stderr line and exit 1 before any job starts;
    the valid config comes back with defaults filled in and keys in canonical order."""
    import sys

    config, problems = config_problems(config)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        raise SystemExit(1)
    return canonical_order(config)


def load_config(path: str | Path | None) -> dict:
    return validate_config(read_config_file(path))


def read_config_file(path: str | Path | None) -> dict:
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(read_text(path, allow_empty=True)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML ({where}{getattr(exc, 'problem', None) or exc})") from exc
    except UnreadableFile as exc:  # binary or damaged: the readers' one line, under the config stage
        raise ConfigError(str(exc)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not a {type(data).__name__}")
    return data


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-able object that does not depend on key order or the Python process."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
