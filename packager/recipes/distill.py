"""Knowledge distillation: a student learns the teacher's outputs on unlabelled inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from packager.data import Dataset

if TYPE_CHECKING:
    import torch

EPOCHS = 30
BATCH = 64
LEARNING_RATE = 1e-3
TEMPERATURE = 2.0
SEED = 0


def distill(teacher: torch.nn.Module, student: torch.nn.Module, data: Dataset, epochs: int = EPOCHS) -> float:
    """Train `student` to match `teacher`: KL on softened logits for 2-D outputs, MSE otherwise.

    Returns the last epoch's mean loss. Labels, if the data has them, are not used."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(SEED)
    inputs = [torch.from_numpy(np.ascontiguousarray(v)) for v in data.inputs.values()]
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(student.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    teacher.eval()
    student.train()
    last = 0.0
    for _ in range(epochs):
        losses = []
        for index in torch.randperm(len(data), generator=generator).split(BATCH):  # type: ignore[no-untyped-call]
            batch = [x[index] for x in inputs]
            with torch.no_grad():
                target = _first(teacher(*batch))
            output = _first(student(*batch))
            if output.ndim == 2 and output.shape[1] > 1:
                loss = F.kl_div(
                    F.log_softmax(output / TEMPERATURE, dim=1),
                    F.softmax(target / TEMPERATURE, dim=1),
                    reduction="batchmean",
                ) * (TEMPERATURE**2)
            else:
                loss = F.mse_loss(output, target)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
        schedule.step()
        last = float(np.mean(losses))
    student.eval()
    return last


def _first(result: object) -> torch.Tensor:
    import torch

    if isinstance(result, torch.Tensor):
        return result
    return next(iter(result))  # type: ignore[call-overload, no-any-return]
