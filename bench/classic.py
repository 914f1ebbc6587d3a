"""The textbook pipeline, as tutorials write it: torchvision + ToTensor + Normalize + DataLoader."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

BATCH_SIZE = 64
EVAL_BATCH = 1000
LR = 1e-3


def _datasets(data_dir: str):
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(data_dir, train=True, download=False, transform=transform)
    test = datasets.MNIST(data_dir, train=False, download=False, transform=transform)
    return train, test


def classic_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def classic_accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    """Test accuracy (percent) with the tutorial's DataLoader evaluation loop."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images.to(device)).argmax(1) == labels.to(device)).sum().item()
    model.train()
    return 100.0 * correct / len(loader.dataset)


def train_classic(
    data_dir: str, device: torch.device, epochs: int, stop_when: Callable[[float], bool]
) -> list[tuple[float, float]]:
    """[(training seconds so far, test accuracy)] per epoch; stops early once stop_when(accuracy)."""
    torch.manual_seed(0)
    train, test = _datasets(data_dir)
    loader = DataLoader(train, batch_size=BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(test, batch_size=EVAL_BATCH)
    model = classic_mlp().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    history, seconds = [], 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        for images, labels in loader:
            loss = F.cross_entropy(model(images.to(device)), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - started
        history.append((seconds, classic_accuracy(model, test_loader, device)))
        if stop_when(history[-1][1]):
            break
    return history


def classic_eval_rate(data_dir: str, model: nn.Module, device: torch.device) -> float:
    """Test images per second through the DataLoader evaluation loop."""
    _, test = _datasets(data_dir)
    loader = DataLoader(test, batch_size=EVAL_BATCH)
    started = time.perf_counter()
    classic_accuracy(model.to(device), loader, device)
    return len(test) / (time.perf_counter() - started)
