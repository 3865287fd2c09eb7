"""Chunk critics: k-vector Q and V (paper Sec. 3.1, Appendix A).

``ChunkCritic`` (BORA's action-conditioned critic) conditions on the VLM cognition token z_t:
``Q_phi(s_t, A_t) = [q_phi(z_t, a_{t+i}, i)]_{i<k}`` and ``V_psi(s_t) = [v_psi(z_t, i)]_{i<k}``, where ``i``
enters through a LEARNED position embedding. Each step token is ``[proj(z_t), a_{t+i}, pos_i]`` fed to a
shared MLP (one scalar per step); its first layer is evaluated in factored form (z term per chunk, position
term per step, action term per token: the same function, see ``_StepHead``), and ``v``/``v_target`` take
optional ``steps`` to evaluate only some positions. Q (phi) and V (psi) have separate parameters (decoupled objectives,
Eq. 3 / Eq. 4); ``q_parameters()`` / ``v_parameters()`` give the two groups. Optional twin Q
(``num_q=2``): ``q()`` returns the element-wise minimum, ``q_all()`` every head. Target copies
(``q_target()``, ``v_target()``) are updated by Polyak averaging (``soft_update``, tau = 0.005, Table 3)
and never receive gradients.

``DecoupledChunkCritic`` (baseline) has its own small CNN over the raw multi-view images (NOT z_t),
a state value and a chunk Q over the FLATTENED chunk (no per-step token-action conditioning, no
position embedding). It returns k-vectors too so the same losses (Eq. 1, 3, 4) apply: with
``head="broadcast"`` (default) the scalar chunk value is repeated over the k steps; with
``head="vector"`` a linear layer maps the chunk feature to k outputs.
Both critics expose ``input_kind`` ("z" or "images") so a trainer knows what to feed as ``x``.

Persistence: ``critic.save(dir)`` writes ``critic_config.json`` (``{"format": "bora-critic/1", "class":
"ChunkCritic" | "DecoupledChunkCritic", "kwargs": {constructor arguments}}``) and ``critic.safetensors``
(the full state dict, target networks included); ``ChunkCritic.load(dir)`` /
``DecoupledChunkCritic.load(dir)`` rebuild it, and ``load_critic(path)`` dispatches on the stored class.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

CRITIC_FORMAT = "bora-critic/1"
CRITIC_CONFIG = "critic_config.json"
CRITIC_WEIGHTS = "critic.safetensors"


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak update ``theta_target <- tau * theta_source + (1 - tau) * theta_target`` (buffers copied)."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"soft_update: tau must be in [0, 1], got {tau}")
    pts, pss = list(target.parameters()), list(source.parameters())
    if len(pts) != len(pss):
        raise ValueError(f"soft_update: target has {len(pts)} parameters, source {len(pss)}")
    same = [i for i, (a, b) in enumerate(zip(pts, pss)) if a.dtype == b.dtype and a.device == b.device]
    if same:  # one multi-tensor lerp (same values as a per-tensor lerp_, fewer dispatches)
        torch._foreach_lerp_([pts[i] for i in same], [pss[i] for i in same], tau)
    for i in sorted(set(range(len(pts))) - set(same)):
        pts[i].lerp_(pss[i].to(pts[i].dtype), tau)
    for bt, bs in zip(target.buffers(), source.buffers(), strict=True):
        bt.copy_(bs)


def _mlp(inp: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = inp
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        d = hidden
    mods.append(nn.Linear(d, out))
    return nn.Sequential(*mods)


class _StepHead(nn.Module):
    """``(z [B,Dz], a [B,k,A] | None) -> [B,k]`` with a learned position embedding per step.

    Each step token is ``x_{t,i} = [proj(z_t), a_{t+i}, pos_i]`` and the first layer of the shared MLP is
    linear in it, so ``W x + b = (W_z proj(z_t) + b) + W_a a_{t+i} + W_p pos_i``. :meth:`forward` evaluates
    it in that factored form: the z term on the B chunks, the position term on the k steps, only the
    action term (and the layers after the first non-linearity) on all B*k step tokens. This is the same
    function with the same parameters (``mlp.0.weight`` is still ``[hidden, hidden + A + pos_dim]``), without
    building the ``[B, k, hidden + A + pos_dim]`` concatenation (see ``_concat_forward`` in the tests).
    """

    def __init__(self, z_dim: int, action_dim: int, k: int, hidden: int, pos_dim: int, layers: int):
        super().__init__()
        self.k, self.action_dim, self.hidden = k, action_dim, hidden
        self.z_proj = nn.Sequential(nn.Linear(z_dim, hidden), nn.LayerNorm(hidden), nn.SiLU())
        self.pos = nn.Parameter(torch.randn(k, pos_dim) * 0.1)
        self.mlp = _mlp(hidden + action_dim + pos_dim, hidden, 1, layers)

    def forward(
        self, z: torch.Tensor, a: torch.Tensor | None, steps: torch.Tensor | slice | None = None
    ) -> torch.Tensor:
        """``[B, k]`` (or ``[B, len(steps)]`` for the chunk positions ``steps``; ``a`` must then match them)."""
        first = self.mlp[0]
        H, A = self.hidden, self.action_dim
        w = first.weight
        pos = self.pos if steps is None else self.pos[steps]
        B, n = z.shape[0], pos.shape[0]
        zc = torch.addmm(first.bias, self.z_proj(z.float()), w[:, :H].t())  # [B, hidden]
        pc = pos @ w[:, H + A :].t()  # [n, hidden]
        pre = zc.unsqueeze(1) + pc.unsqueeze(0)  # [B, n, hidden]
        if A:
            pre = torch.addmm(pre.view(B * n, -1), a.float().reshape(B * n, A), w[:, H : H + A].t())
        x = pre
        for m in self.mlp[1:]:
            x = m(x)
        return x.view(B, n)


class ChunkCritic(nn.Module):
    """Action-conditioned chunk critic on z_t (q: ``[B,k]``, v: ``[B,k]``) with target networks."""

    input_kind = "z"
    v_steps = True  # v / v_target accept ``steps`` (evaluate only those chunk positions)

    def __init__(
        self,
        z_dim: int,
        action_dim: int,
        chunk_size: int = 32,
        hidden_dim: int = 256,
        pos_dim: int = 32,
        num_layers: int = 2,
        num_q: int = 2,
    ):
        super().__init__()
        if num_q < 1:
            raise ValueError(f"ChunkCritic.num_q must be >= 1, got {num_q}")
        self.init_kwargs = dict(
            z_dim=z_dim,
            action_dim=action_dim,
            chunk_size=chunk_size,
            hidden_dim=hidden_dim,
            pos_dim=pos_dim,
            num_layers=num_layers,
            num_q=num_q,
        )
        self.z_dim, self.action_dim, self.chunk_size = z_dim, action_dim, chunk_size
        self.q_heads = nn.ModuleList(
            _StepHead(z_dim, action_dim, chunk_size, hidden_dim, pos_dim, num_layers) for _ in range(num_q)
        )
        self.v_head = _StepHead(z_dim, 0, chunk_size, hidden_dim, pos_dim, num_layers)
        self.q_heads_target = copy.deepcopy(self.q_heads).requires_grad_(False)
        self.v_head_target = copy.deepcopy(self.v_head).requires_grad_(False)

    # -- checks
    def _check(self, z: torch.Tensor, actions: torch.Tensor | None = None) -> None:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"ChunkCritic: z must be [B, z_dim={self.z_dim}], got {tuple(z.shape)}")
        if actions is not None:
            exp = (z.shape[0], self.chunk_size, self.action_dim)
            if tuple(actions.shape) != exp:
                raise ValueError(
                    f"ChunkCritic: actions must be [B, k, A] = {list(exp)}, got {tuple(actions.shape)}"
                )

    def _steps(self, steps, z: torch.Tensor) -> torch.Tensor | slice | None:
        """The positions as an index of ``pos``: a slice when they are consecutive (a view: no index tensor
        to copy to the device, so ``steps=[0]`` can run inside a captured CUDA graph), else a long tensor."""
        if steps is None:
            return None
        vals = steps.reshape(-1).tolist() if isinstance(steps, torch.Tensor) else [int(i) for i in steps]
        if not vals or min(vals) < 0 or max(vals) >= self.chunk_size:
            raise ValueError(f"ChunkCritic: steps must be chunk positions in [0, {self.chunk_size}), got {steps}")
        if vals == list(range(vals[0], vals[-1] + 1)):
            return slice(vals[0], vals[-1] + 1)
        return torch.tensor(vals, dtype=torch.long, device=z.device)

    # -- online networks
    def q_all(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Every Q head: ``[num_q, B, k]``."""
        self._check(z, actions)
        return torch.stack([h(z, actions) for h in self.q_heads], 0)

    def q(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[q_phi(z_t, a_{t+i}, i)]_i`` -> ``[B, k]`` (minimum over the twin heads)."""
        return self.q_all(z, actions).amin(0)

    def v(self, z: torch.Tensor, steps: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """``[v_psi(z_t, i)]_i`` -> ``[B, k]``; only the positions ``steps`` (``[B, len(steps)]``) when given."""
        self._check(z)
        return self.v_head(z, None, self._steps(steps, z))

    # -- targets
    @torch.no_grad()
    def q_target(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self._check(z, actions)
        return torch.stack([h(z, actions) for h in self.q_heads_target], 0).amin(0)

    @torch.no_grad()
    def v_target(self, z: torch.Tensor, steps: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """Target ``v(z_t, i)``: ``[B, k]``, or ``[B, len(steps)]`` for the positions ``steps`` only
        (e.g. ``steps=[0]`` for the ``v(z_{t+1}, 0)`` bootstrap of Eq. 1, k times cheaper)."""
        self._check(z)
        return self.v_head_target(z, None, self._steps(steps, z))

    def soft_update_targets(self, tau: float = 0.005) -> None:
        soft_update(self.q_heads_target, self.q_heads, tau)
        soft_update(self.v_head_target, self.v_head, tau)

    def q_parameters(self) -> Iterator[nn.Parameter]:
        return self.q_heads.parameters()

    def v_parameters(self) -> Iterator[nn.Parameter]:
        return self.v_head.parameters()

    def save(self, directory: str | Path) -> Path:
        """``critic_config.json`` + ``critic.safetensors`` (see the module docstring)."""
        return _save_critic(self, directory)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> ChunkCritic:
        return _load_critic(directory, device, expect=cls)


class PixelEncoder(nn.Module):
    """Small CNN shared over views: ``[B, n_cam, 3, H, W]`` (float [0,1] or uint8) -> ``[B, feat]``."""

    def __init__(self, n_cameras: int, feat_dim: int = 256, channels: int = 32):
        super().__init__()
        self.n_cameras = n_cameras
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(3, c, 5, stride=2, padding=2),
            nn.GroupNorm(4, c),
            nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * c),
            nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * c),
            nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.proj = nn.Sequential(
            nn.Linear(n_cameras * 2 * c * 16, feat_dim), nn.LayerNorm(feat_dim), nn.SiLU()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 5 or images.shape[1] != self.n_cameras or images.shape[2] != 3:
            raise ValueError(
                f"PixelEncoder: images must be [B, n_cam={self.n_cameras}, 3, H, W], "
                f"got {tuple(images.shape)}"
            )
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        B = x.shape[0]
        f = self.conv(x.flatten(0, 1) * 2 - 1)
        return self.proj(f.view(B, -1))


class _DecoupledNets(nn.Module):
    def __init__(self, n_cameras, action_dim, k, hidden, num_q, head, state_dim):
        super().__init__()
        self.enc = PixelEncoder(n_cameras, hidden)
        out = k if head == "vector" else 1
        inp = hidden + state_dim
        self.q = nn.ModuleList(_mlp(inp + k * action_dim, hidden, out) for _ in range(num_q))
        self.v = _mlp(inp, hidden, out)


class DecoupledChunkCritic(nn.Module):
    """Baseline critic on raw pixels: ``q(images, actions [B,k,A]) -> [B,k]``, ``v(images) -> [B,k]``.

    Q and V each have their own pixel encoder (separate phi / psi). Optional ``proprio`` [B, state_dim].
    """

    input_kind = "images"

    def __init__(
        self,
        n_cameras: int,
        action_dim: int,
        chunk_size: int = 32,
        hidden_dim: int = 256,
        num_q: int = 2,
        head: str = "broadcast",
        state_dim: int = 0,
    ):
        super().__init__()
        if head not in ("broadcast", "vector"):
            raise ValueError(f"DecoupledChunkCritic.head must be 'broadcast' or 'vector', got {head!r}")
        self.init_kwargs = dict(
            n_cameras=n_cameras,
            action_dim=action_dim,
            chunk_size=chunk_size,
            hidden_dim=hidden_dim,
            num_q=num_q,
            head=head,
            state_dim=state_dim,
        )
        self.action_dim, self.chunk_size, self.head, self.state_dim = action_dim, chunk_size, head, state_dim
        self.q_net = _DecoupledNets(n_cameras, action_dim, chunk_size, hidden_dim, num_q, head, state_dim)
        self.v_net = _DecoupledNets(n_cameras, action_dim, chunk_size, hidden_dim, 0, head, state_dim)
        self.q_net_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.v_net_target = copy.deepcopy(self.v_net).requires_grad_(False)

    def _feat(self, nets, images, proprio):
        f = nets.enc(images)
        if self.state_dim:
            if proprio is None or proprio.shape != (f.shape[0], self.state_dim):
                raise ValueError(
                    f"DecoupledChunkCritic: proprio [B, state_dim={self.state_dim}] required, got "
                    f"{None if proprio is None else tuple(proprio.shape)}"
                )
            f = torch.cat([f, proprio.float()], -1)
        return f

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        return y.expand(-1, self.chunk_size) if self.head == "broadcast" else y

    def _q(self, nets, images, actions, proprio):
        exp = (images.shape[0], self.chunk_size, self.action_dim)
        if tuple(actions.shape) != exp:
            raise ValueError(
                f"DecoupledChunkCritic: actions must be [B, k, A] = {list(exp)}, got {tuple(actions.shape)}"
            )
        h = torch.cat([self._feat(nets, images, proprio), actions.float().flatten(1)], -1)
        return torch.stack([self._out(q(h)) for q in nets.q], 0)

    def q_all(self, images, actions, proprio=None):
        return self._q(self.q_net, images, actions, proprio)

    def q(self, images, actions, proprio=None):
        return self.q_all(images, actions, proprio).amin(0)

    def v(self, images, proprio=None):
        return self._out(self.v_net.v(self._feat(self.v_net, images, proprio)))

    @torch.no_grad()
    def q_target(self, images, actions, proprio=None):
        return self._q(self.q_net_target, images, actions, proprio).amin(0)

    @torch.no_grad()
    def v_target(self, images, proprio=None):
        return self._out(self.v_net_target.v(self._feat(self.v_net_target, images, proprio)))

    def soft_update_targets(self, tau: float = 0.005) -> None:
        soft_update(self.q_net_target, self.q_net, tau)
        soft_update(self.v_net_target, self.v_net, tau)

    def q_parameters(self):
        return self.q_net.parameters()

    def v_parameters(self):
        return self.v_net.parameters()

    def save(self, directory: str | Path) -> Path:
        """``critic_config.json`` + ``critic.safetensors`` (see the module docstring)."""
        return _save_critic(self, directory)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> DecoupledChunkCritic:
        return _load_critic(directory, device, expect=cls)


# ---------------------------------------------------------------------------------------------- persistence
CRITIC_CLASSES: dict[str, type[nn.Module]] = {
    "ChunkCritic": ChunkCritic,
    "DecoupledChunkCritic": DecoupledChunkCritic,
}


def _save_critic(critic: nn.Module, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    name = type(critic).__name__
    if name not in CRITIC_CLASSES:
        raise TypeError(f"save: unsupported critic class {name} (expected one of {sorted(CRITIC_CLASSES)})")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"format": CRITIC_FORMAT, "class": name, "kwargs": dict(critic.init_kwargs)}
    sd = {k: v.detach().contiguous().cpu().clone() for k, v in critic.state_dict().items()}
    save_file(sd, str(d / CRITIC_WEIGHTS), metadata={"format": CRITIC_FORMAT, "class": name})
    (d / CRITIC_CONFIG).write_text(json.dumps(cfg, indent=1))
    return d


def _load_critic(directory: str | Path, device=None, expect: type | None = None) -> nn.Module:
    from safetensors.torch import load_file

    d = Path(directory)
    for f in (CRITIC_CONFIG, CRITIC_WEIGHTS):
        if not (d / f).is_file():
            raise FileNotFoundError(f"critic load: {d / f} is missing (expected a directory written by save)")
    cfg = json.loads((d / CRITIC_CONFIG).read_text())
    if cfg.get("format") != CRITIC_FORMAT:
        raise ValueError(
            f"critic load: {d / CRITIC_CONFIG} has format {cfg.get('format')!r}, expected {CRITIC_FORMAT!r}"
        )
    name = cfg.get("class")
    if name not in CRITIC_CLASSES:
        raise ValueError(
            f"critic load: {d / CRITIC_CONFIG}: unknown class {name!r}, "
            f"expected one of {sorted(CRITIC_CLASSES)}"
        )
    cls = CRITIC_CLASSES[name]
    if expect is not None and cls is not expect:
        raise ValueError(f"critic load: {d} holds a {name}, not a {expect.__name__} (use load_critic)")
    critic = cls(**cfg["kwargs"])
    sd = load_file(str(d / CRITIC_WEIGHTS), device="cpu")
    own = critic.state_dict()
    bad = [
        f"{k}: file {tuple(sd[k].shape)} vs config {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if bad or missing or unexpected:
        raise ValueError(
            f"critic load: {d / CRITIC_WEIGHTS} does not match {d / CRITIC_CONFIG} "
            f"(shape {bad[:5]}, missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    critic.load_state_dict(sd, strict=True)
    if device is not None:
        critic = critic.to(device)
    return critic


def load_critic(path: str | Path, device: str | torch.device | None = None) -> nn.Module:
    """A critic saved with ``save`` (its class read from ``critic_config.json``), or from ``RUN/critic/``."""
    p = Path(path)
    if not (p / CRITIC_CONFIG).is_file() and (p / "critic" / CRITIC_CONFIG).is_file():
        p = p / "critic"
    return _load_critic(p, device)
