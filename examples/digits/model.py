"""A small CNN for scikit-learn's 8x8 digits: trained here in seconds, with no download.

    python examples/digits/model.py      # trains, writes weights.pt, train.npz and eval.npz beside this file
    lambdafit pack examples/digits/model.py:build --name digits --eval examples/digits/eval.npz

`build()` is the factory lambdafit loads: it returns the trained module and an example input.
Everything is seeded, so the files are the same on every run of the same versions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights.pt"
LABELS = [str(i) for i in range(10)]
SEED = 0


class DigitsCNN(nn.Module):
    labels = LABELS
    output_names = ("logits",)

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 4, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.reshape(-1, 1, 8, 8)))


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_eval, y_train, y_eval = train_test_split(x, y, test_size=0.2, stratify=y, random_state=SEED)
    return x_train, x_eval, y_train, y_eval


def train(epochs: int = 15) -> DigitsCNN:
    torch.manual_seed(SEED)
    x_train, x_eval, y_train, y_eval = split()
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xs), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            optimizer.step()
    model.eval()
    torch.save(model.state_dict(), WEIGHTS)
    np.savez(HERE / "eval.npz", x=x_eval, labels=y_eval)
    np.savez(HERE / "train.npz", x=x_train, labels=y_train)
    return model


def build() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    if WEIGHTS.exists():
        model = DigitsCNN()
        model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    else:
        model = train()
    return model.eval(), {"x": torch.zeros(1, 64)}


if __name__ == "__main__":
    torch.set_num_threads(2)
    trained = train()
    _, x_eval, _, y_eval = split()
    with torch.no_grad():
        accuracy = (trained(torch.from_numpy(x_eval)).argmax(1).numpy() == y_eval).mean()
    print(f"digits: eval accuracy {accuracy:.4f} on {len(y_eval)} held-out images; wrote {WEIGHTS.name}, eval.npz")
