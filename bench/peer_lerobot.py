"""LeRobot HIL-SERL learner update, timed inside ``.interop-venv`` (the peer of ``bench_peer.py``).

Runs as a worker process of ``bench/bench_peer.py`` under the interop environment's Python (lerobot
installed there, never in ``.venv``). It imports only torch and lerobot. One update is exactly the
learner loop of ``lerobot/rl/learner.py`` (``add_actor_information_and_train``, policy_update_freq 1):
``policy.forward(batch, model="critic")`` + backward + grad clip (40) + Adam step, then
``model="actor"`` and ``model="temperature"`` the same way, then ``policy.update_target_networks()``;
the optimisers are those of ``make_optimizers_and_scheduler`` (Adam on the critic ensemble, the actor
without the shared encoder, and ``log_alpha``). Observations are a state vector only (no images), so
``get_observation_features`` returns ``(None, None)`` as in the learner.

Protocol (one JSON object per line): stdin ``{"batch": B, "updates": N, "warmup": W}`` -> stdout
``{"batch": B, "wall_s": [...], "cpu_s": [...], "params": {...}}`` (seconds per update of each timed
update); ``{"quit": true}`` ends it. The first line on stdout is ``{"ready": ..., "lerobot": version}``.

    .interop-venv/bin/python bench/peer_lerobot.py --state-dim 123 --action-dim 27 --hidden 256 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def import_policies_package() -> str:
    """Import ``lerobot.policies``; where its ``__init__`` fails, register the package without running it.

    The package's ``__init__`` imports every policy (GR00T's model among them); with another ``transformers``
    than LeRobot pins (a CUDA machine's own image) GR00T's dataclass fails at import. The SAC update needs none of
    those modules, so the SAC modules are then imported from the package's folder as they are. Returns what was done.
    """
    import importlib
    import importlib.util
    import types

    try:
        importlib.import_module("lerobot.policies")
        return "imported"
    except Exception as e:  # noqa: BLE001  (any import-time failure of an unrelated policy)
        for name in [m for m in sys.modules if m == "lerobot.policies" or m.startswith("lerobot.policies.")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("lerobot.policies")
        pkg = types.ModuleType("lerobot.policies")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["lerobot.policies"] = pkg
        return f"its __init__ skipped ({type(e).__name__}: {str(e)[:120]})"


def build(state_dim: int, action_dim: int, hidden: int, layers: int, compile_critic: bool = False, device: str = "cpu"):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.sac.configuration_sac import (
        ActorNetworkConfig,
        CriticNetworkConfig,
        SACConfig,
    )
    from lerobot.policies.sac.modeling_sac import SACPolicy

    cfg = SACConfig(
        input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
        device=device,
        latent_dim=hidden,
        state_encoder_hidden_dim=hidden,
        critic_network_kwargs=CriticNetworkConfig(hidden_dims=[hidden] * layers),
        actor_network_kwargs=ActorNetworkConfig(hidden_dims=[hidden] * layers),
        # its default compiles the critic ensemble and its target with torch.compile; ours runs eager
        use_torch_compile=compile_critic,
    )
    policy = SACPolicy(cfg).to(device).train()  # make_policy moves the policy to cfg.device the same way
    # make_optimizers_and_scheduler (lerobot/rl/learner.py)
    opts = {
        "actor": torch.optim.Adam(
            [p for n, p in policy.actor.named_parameters() if not cfg.shared_encoder or not n.startswith("encoder")],
            lr=cfg.actor_lr,
        ),
        "critic": torch.optim.Adam(policy.critic_ensemble.parameters(), lr=cfg.critic_lr),
        "temperature": torch.optim.Adam([policy.log_alpha], lr=cfg.critic_lr),
    }
    return policy, opts


def make_batch(B: int, state_dim: int, action_dim: int, g: torch.Generator, device: str = "cpu") -> dict:
    """A replay batch already on the device (the learner's buffer samples on the policy's device)."""
    return {
        "action": (torch.rand(B, action_dim, generator=g) * 2 - 1).to(device),
        "reward": (-0.002 * torch.ones(B)).to(device),
        "state": {"observation.state": torch.randn(B, state_dim, generator=g).to(device)},
        "next_state": {"observation.state": torch.randn(B, state_dim, generator=g).to(device)},
        "done": torch.zeros(B).to(device),
        "observation_feature": None,
        "next_observation_feature": None,
    }


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timed update includes its kernels (no-op on a CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def update(policy, opts, batch: dict, clip: float) -> None:
    """One optimisation step of lerobot/rl/learner.py (critic, actor, temperature, targets)."""
    loss = policy.forward(batch, model="critic")["loss_critic"]
    opts["critic"].zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.critic_ensemble.parameters(), max_norm=clip).item()
    opts["critic"].step()
    loss = policy.forward(batch, model="actor")["loss_actor"]
    opts["actor"].zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.actor.parameters(), max_norm=clip).item()
    opts["actor"].step()
    loss = policy.forward(batch, model="temperature")["loss_temperature"]
    opts["temperature"].zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([policy.log_alpha], max_norm=clip).item()
    opts["temperature"].step()
    policy.update_target_networks()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--state-dim", type=int, required=True)
    p.add_argument("--action-dim", type=int, required=True)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="use_torch_compile=True (LeRobot's default)")
    p.add_argument("--device", default="cpu", help="torch device of the policy and its batches (cpu, cuda)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    import lerobot

    policies_package = import_policies_package()
    policy, opts = build(a.state_dim, a.action_dim, a.hidden, a.layers, a.compile, a.device)
    clip = policy.config.grad_clip_norm
    params = {
        "actor": sum(p.numel() for p in policy.actor.parameters()),
        "critic_ensemble": sum(p.numel() for p in policy.critic_ensemble.parameters()),
        "num_critics": policy.config.num_critics,
    }
    g = torch.Generator().manual_seed(0)
    print(
        json.dumps({"ready": True, "lerobot": getattr(lerobot, "__version__", "?"), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": a.device, "params": params,
                    "policies_package": policies_package}),
        flush=True,
    )
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        B = int(req["batch"])
        batches = [make_batch(B, a.state_dim, a.action_dim, g, a.device) for _ in range(4)]
        for i in range(int(req.get("warmup", 1))):
            update(policy, opts, batches[i % 4], clip)
        sync(a.device)
        wall, cpu = [], []
        for i in range(int(req["updates"])):
            t0, c0 = time.perf_counter(), time.process_time()
            update(policy, opts, batches[i % 4], clip)
            sync(a.device)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(json.dumps({"batch": B, "wall_s": wall, "cpu_s": cpu, "params": params}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
