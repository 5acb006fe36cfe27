"""One joint SPT per site group against one expert SPT per descriptor: what the joint model costs in score and
saves in training time (the paper: ~1 % accuracy apart, ~85 % less training time for the joint model)."""

from __future__ import annotations

import numpy as np

from ..atomic import write_json, write_text
from ..errors import ReportError
from .benchmark import SCORE_NAME, read_metrics, same_dataset
from .figures import pyplot, save_png
from ..models.metrics import MAIN_SCORE, SECOND_SCORE
from .tables import fmt, heading, html_page, html_table, paragraph, write_csv


def compare(joint_paths: list[str], expert_paths: list[str]) -> dict:
    """{dataset_hash, groups: {group: {descriptors: {name: {kind, metric, joint, expert, ...}}, joint_seconds,
    expert_seconds, saving}}}"""
    joints, experts = read_metrics(joint_paths), read_metrics(expert_paths)
    dataset_hash = same_dataset(joints | experts)
    groups: dict = {}
    for doc in joints.values():
        groups[doc["group"]] = {"joint": doc, "experts": {}}
    for path, doc in experts.items():
        if doc["group"] not in groups:
            raise ReportError(f"expert {path} has no joint model of group {doc['group']!r} to compare with")
        (name,) = doc["descriptors"]  # an expert predicts one descriptor
        groups[doc["group"]]["experts"][name] = doc
    result = {}
    for group, pair in groups.items():
        rows = {}
        for name, expert in pair["experts"].items():
            joint_scores, expert_scores = pair["joint"]["descriptors"][name], expert["descriptors"][name]
            key, second = MAIN_SCORE[joint_scores["kind"]], SECOND_SCORE[joint_scores["kind"]]
            joint, alone = joint_scores.get(key), expert_scores.get(key)
            rows[name] = {"kind": joint_scores["kind"], "metric": key, "joint": joint, "expert": alone,
                          "difference": None if None in (joint, alone) else joint - alone,
                          "second_metric": second, "joint_second": joint_scores.get(second),
                          "expert_second": expert_scores.get(second), "expert_seconds": expert.get("train_seconds")}
        expert_seconds = float(sum(r["expert_seconds"] or 0.0 for r in rows.values()))
        joint_seconds = pair["joint"].get("train_seconds")
        result[group] = {"descriptors": rows, "joint_seconds": joint_seconds, "expert_seconds": expert_seconds,
                         "n_experts": len(rows),
                         "saving": None if not expert_seconds or joint_seconds is None
                         else 1.0 - joint_seconds / expert_seconds}
    return {"dataset_hash": dataset_hash, "groups": result}


def _summary(group: str, entry: dict) -> str:
    diffs = [r["difference"] for r in entry["descriptors"].values() if r["difference"] is not None]
    mean = f"{np.mean(diffs):+.3f}" if diffs else "–"
    saving = "–" if entry["saving"] is None else f"{100 * entry['saving']:.0f} %"
    all_experts = entry["n_experts"] == len(entry["descriptors"])
    return (f"{group} sites: {entry['n_experts']} expert(s) took {entry['expert_seconds']:.0f} s to train, the joint "
            f"model {fmt(entry['joint_seconds'], 0)} s (saving {saving}"
            f"{'' if all_experts else ', over the descriptors that have an expert'}); mean score difference "
            f"joint − expert {mean}.")


def _html(result: dict) -> str:
    parts = [paragraph("Main score per descriptor (weighted F1 for classes, R² for regression; accuracy / MAE in "
                       "brackets) of the joint SPT and the expert SPT trained on that descriptor alone, same split. "
                       "Training time: wall seconds of each fit (experts summed). Only the descriptors listed in "
                       "train.experts have an expert.")]
    for group, entry in result["groups"].items():
        rows = [[f"{name} ({SCORE_NAME[r['metric']]})", f"{fmt(r['joint'])} ({fmt(r['joint_second'])})",
                 f"{fmt(r['expert'])} ({fmt(r['expert_second'])})",
                 "–" if r["difference"] is None else f"{r['difference']:+.3f}", fmt(r["expert_seconds"], 1)]
                for name, r in entry["descriptors"].items()]
        parts += [heading(f"{group} sites"), paragraph(_summary(group, entry)),
                  html_table(["descriptor", "joint SPT", "expert SPT", "joint − expert", "expert train s"], rows)]
    return html_page("Expert SPTs vs the joint SPT", parts)


def plot(result: dict, path: str) -> None:
    """Left: score per descriptor, joint vs expert; right: total training time per group."""
    plt = pyplot()
    groups = result["groups"]
    labels, joint, expert = [], [], []
    for group, entry in groups.items():
        for name, r in entry["descriptors"].items():
            labels.append(f"{group}\n{name}")
            joint.append(np.nan if r["joint"] is None else r["joint"])
            expert.append(np.nan if r["expert"] is None else r["expert"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(labels))
    left.bar(x - 0.2, joint, 0.4, label="joint SPT", color="black")
    left.bar(x + 0.2, expert, 0.4, label="expert SPT", color="tab:orange")
    left.set_xticks(x, labels, fontsize=8)
    left.set_ylabel("weighted F1 (classes) / R² (regression)")
    left.set_ylim(min(0.0, float(np.nanmin(joint + expert + [0]))), 1)
    left.set_title("Test score per descriptor")
    left.legend(fontsize=9)
    names = list(groups)
    gx = np.arange(len(names))
    right.bar(gx - 0.2, [groups[g]["joint_seconds"] or 0 for g in names], 0.4, color="black", label="joint")
    right.bar(gx + 0.2, [groups[g]["expert_seconds"] for g in names], 0.4, color="tab:orange", label="all experts")
    right.set_xticks(gx, [f"{g} sites" for g in names])
    right.set_ylabel("training time (s)")
    right.set_title("Total training time")
    right.legend(fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def write_expert_vs_joint(joint_paths: list[str], expert_paths: list[str], outputs: dict) -> dict:
    """outputs: html, json, csv, figure."""
    result = compare(joint_paths, expert_paths)
    plot(result, outputs["figure"])
    rows = [[g, n, r["metric"], r["joint"], r["expert"], r["difference"], r["expert_seconds"], e["joint_seconds"]]
            for g, e in result["groups"].items() for n, r in e["descriptors"].items()]
    write_csv(outputs["csv"], ["group", "descriptor", "metric", "joint", "expert", "joint_minus_expert",
                               "expert_train_seconds", "joint_train_seconds"], rows)
    write_json(outputs["json"], result)
    write_text(outputs["html"], _html(result))
    return result
