#!/usr/bin/python3
"""A Mamba block written the way mamba_ssm's Mamba module is, with hax's CPU kernels in place of the CUDA ones, and a
HAX branch added to it; trained for a few steps on random data to show that every piece has a backward.

    PYTHONPATH=python /usr/bin/python3 examples/torch_mamba_block.py
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from hax.torch import HaxAttention, causal_conv1d_fn, selective_scan_fn


class MambaWithHax(nn.Module):
    def __init__(self, d_model=64, d_state=16, d_conv=4, expand=2, dt_rank=8):
        super().__init__()
        d_inner = expand * d_model
        self.d_state, self.dt_rank = d_state, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1).float()).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.hax = HaxAttention(d_inner, d_state, "sign_bin_lsh+key_selection")  # the paper's sparse branch

    def forward(self, hidden):                                     # (batch, L, d_model)
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # (batch, d_inner, L) each
        x = causal_conv1d_fn(x, self.conv1d.weight, self.conv1d.bias, activation="silu")
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        y = selective_scan_fn(x, (dt @ self.dt_proj.weight.T).transpose(1, 2), -torch.exp(self.A_log),
                              B.transpose(1, 2), C.transpose(1, 2), self.D, z=z, delta_bias=self.dt_proj.bias,
                              delta_softplus=True)
        y = y.transpose(1, 2) + self.hax(x.transpose(1, 2), z.transpose(1, 2))  # + E * attn * silu(z)
        return self.out_proj(y)


if __name__ == "__main__":
    torch.manual_seed(0)
    block = MambaWithHax()
    optimizer = torch.optim.AdamW(block.parameters(), lr=1e-3)
    inputs, targets = torch.randn(4, 256, 64), torch.randn(4, 256, 64)
    for step in range(5):
        loss = F.mse_loss(block(inputs), targets) + 0.1 * block.hax.gate_loss  # the key scorer learns from its gate loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss.item():.4f}")
