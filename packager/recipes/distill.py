"""Knowledge distillation: a student learns the teacher's outputs on unlabelled inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from packager.data import Dataset
from packager.errors import RecipeError
from packager.load import TorchModel

if TYPE_CHECKING:
    import torch

EPOCHS = 30
BATCH = 64
LEARNING_RATE = 1e-3
TEMPERATURE = 2.0
SEED = 0


def distill(teacher: TorchModel, student: torch.nn.Module, data: Dataset, epochs: int = EPOCHS) -> float:
    """Train `student` to match `teacher`: KL on softened logits for 2-D outputs, MSE otherwise.

    Returns the last epoch's mean loss. Labels, if the data has them, are not used."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(SEED)
    names = list(teacher.example_inputs)
    axes = [data.axes[name] for name in names]
    if any(axis not in (0, None) for axis in axes):
        raise RecipeError("distillation takes inputs batched on axis 0")
    inputs = [torch.from_numpy(np.ascontiguousarray(data.inputs[name])) for name in names]
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(student.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    teacher.module.eval()
    student.train()
    last = 0.0
    for _ in range(epochs):
        losses = []
        for index in torch.randperm(len(data), generator=generator).split(BATCH):  # type: ignore[no-untyped-call]
            batch = [x[index] if axis is not None else x for x, axis in zip(inputs, axes, strict=True)]
            with torch.no_grad():
                target = _first(teacher.call(teacher.module, batch))
            output = _first(teacher.call(student, batch))
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
    from packager.export import flatten

    return flatten(result)[0][1]
