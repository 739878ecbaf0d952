"""MLP accuracy predictor over a search space's fixed-length encoding (OFA's ``AccuracyPredictor``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

__all__ = ["AccuracyPredictor"]


class AccuracyPredictor(nn.Module):
    """``prediction = base + scale * MLP(encoding)``, trained with Adam on MSE.

    Three hidden layers of 400 ReLU units as in OFA's predictor (Cai et al., "Once-for-All", ICLR 2020,
    Sec. 3.4 / repo ``ofa/nas/accuracy_predictor/acc_predictor.py``); ``base`` (the base-accuracy
    offset) and ``scale`` are the training targets' mean and standard deviation, set by ``fit``.
    """

    def __init__(self, n_features: int, hidden_size: int = 400, n_layers: int = 3, seed: int = 0):
        super().__init__()
        if n_features < 1 or hidden_size < 1 or n_layers < 1:
            raise ValueError(
                f"n_features, hidden_size and n_layers must be >= 1, got {n_features}, {hidden_size}, {n_layers}"
            )
        layers: list[nn.Module] = []
        width = n_features
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(n_layers):
                layers += [nn.Linear(width, hidden_size), nn.ReLU(inplace=True)]
                width = hidden_size
            layers.append(nn.Linear(width, 1, bias=False))
            self.mlp = nn.Sequential(*layers)
        self.n_features, self.seed = n_features, seed
        self.register_buffer("base", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).squeeze(-1) * self.scale + self.base

    def _as_tensor(self, X: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(X, dtype=np.float32)).to(self.base.device)
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {tuple(x.shape)}")
        return x

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int = 300,
        lr: float = 1e-3,
        batch_size: int = 128,
        weight_decay: float = 0.0,
    ) -> AccuracyPredictor:
        """Train on encodings ``X`` (n, features) and targets ``y`` (n,); returns ``self``."""
        x, t = self._as_tensor(X), torch.as_tensor(np.asarray(y, dtype=np.float32)).to(self.base.device)
        if t.shape != (x.shape[0],) or x.shape[0] < 2:
            raise ValueError(f"y must have shape ({x.shape[0]},) with at least 2 samples, got {tuple(t.shape)}")
        self.base.fill_(t.mean())
        self.scale.fill_(t.std().clamp_min(1e-8))
        opt = torch.optim.Adam(self.mlp.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(self.seed)
        self.train()
        for _ in range(epochs):
            for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
                loss = nn.functional.mse_loss(self.mlp(x[idx]).squeeze(-1), (t[idx] - self.base) / self.scale)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return self.eval()

    @torch.no_grad()
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets for encodings ``X`` as a float numpy array."""
        return self(self._as_tensor(X)).cpu().numpy()
