"""The multi-task loss shared by every neural model: each descriptor's loss over its labelled sites, summed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .targets import IGNORE_INDEX, TargetSpec


def masked_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                specs: list[TargetSpec]) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over tasks of the task's mean loss over labelled sites: CE for classes, MSE for standardised values.

    Classification targets use IGNORE_INDEX and regression targets NaN for 'no label'; those sites add
    nothing to the loss or its gradient. A task with no label in the batch contributes zero.
    """
    total = torch.zeros((), device=next(iter(outputs.values())).device)
    per_task = {}
    for spec in specs:
        output, target = outputs[spec.name], targets[spec.name]
        if spec.kind == "classification":
            labelled = target != IGNORE_INDEX
            task_sum = F.cross_entropy(output, target, ignore_index=IGNORE_INDEX, reduction="sum")
        else:
            labelled = torch.isfinite(target)
            # NaN must be replaced, not only masked: 0 * NaN in the backward pass would poison the gradient.
            squared_error = (output - torch.nan_to_num(target)) ** 2
            task_sum = torch.where(labelled, squared_error, torch.zeros_like(squared_error)).sum()
        task_loss = task_sum / labelled.sum().clamp(min=1)
        per_task[spec.name] = float(task_loss.detach())
        total = total + task_loss
    return total, per_task
