"""Sharpness-aware minimization (Foret et al., 2021, arXiv:2010.01412).

Own code because no maintained pip package provides it: the reference implementations
(davda54/sam, google-research/sam) are repositories, not releases, and the PyPI names that exist
are unmaintained forks. The algorithm is two gradient evaluations per step, ~20 lines.
"""

from __future__ import annotations

import torch


class SAM(torch.optim.Optimizer):
    """Wraps a base optimizer: step to the worst point within ``rho``, take its gradient, step from the start."""

    def __init__(self, params, base_optimizer: type[torch.optim.Optimizer], rho: float = 0.05, **kwargs) -> None:
        if rho <= 0:
            raise ValueError(f"rho must be positive, got {rho}")
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups  # one set of groups: schedulers reach both
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def first_step(self) -> None:
        grads = [p.grad.norm(2) for group in self.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.norm(torch.stack(grads), 2) if grads else torch.tensor(0.0)
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = p.grad * scale
                p.add_(e_w)
                self.state[p]["e_w"] = e_w

    @torch.no_grad()
    def second_step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if "e_w" in self.state[p]:
                    p.sub_(self.state[p].pop("e_w"))  # back to w, then the base step with the gradient at w + e
        self.base_optimizer.step()

    def step(self, closure=None):
        """``closure`` zeroes the gradients, computes the loss, calls backward and returns the loss."""
        if closure is None:
            raise ValueError("SAM needs a closure that recomputes the loss")
        loss = closure()
        self.first_step()
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss
