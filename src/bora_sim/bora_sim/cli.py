"""``bora sim <verb>``: ``render`` a contact sheet of the three views, ``glove-map``: the scripted
operator's glove -> Shadow retarget map with the actuator limits (plain data for ``python -m
bora_teleop.retarget convert``, which writes ``config/retarget_shadow.yaml``). ``collect``
(demonstrations) is added by ``bora_trainer.collect``, which the ``bora sim`` command runs.

``main(argv)`` receives what follows ``bora sim``, e.g. ``["render", "--task", "open_box", ...]``.
"""

from __future__ import annotations

import argparse
import json
import sys

from bora_sim.tasks import TASKS


def _parser(extra_verbs: dict | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bora sim", description="MuJoCo simulation of the BORA tasks.")
    sub = p.add_subparsers(dest="verb", required=True)
    for name, (help_text, add_arguments, _) in (extra_verbs or {}).items():
        add_arguments(sub.add_parser(name, help=help_text))
    r = sub.add_parser("render", help="write a PNG contact sheet: three colour views and their depth")
    r.add_argument("--task", required=True, choices=sorted(TASKS))
    r.add_argument("--out", required=True, help="output .png file")
    r.add_argument("--object-set", default="standard")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--size", type=int, default=160, help="image size of each view in pixels")
    r.add_argument(
        "--steps",
        type=int,
        default=-1,
        help="expert steps to run before the snapshot (-1: stop in the middle of the expert's plan)",
    )
    g = sub.add_parser("glove-map", help="write the operator's glove -> Shadow map with limits (YAML, plain data)")
    g.add_argument("--out", required=True, help="output .yaml file")
    return p


def render_sheet(
    task: str, out: str, object_set: str = "standard", seed: int = 0, size: int = 160, steps: int = -1
) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from bora_sim.env import make_env
    from bora_sim.experts import ScriptedExpert

    env = make_env(task, object_set, image_size=size, render=True)
    obs, info = env.reset(seed=seed)
    expert = ScriptedExpert(env, seed=seed)
    n = steps if steps >= 0 else int(0.5 * sum(w.duration for w in expert.plan) * env.control_hz)
    for _ in range(n):
        obs, _, term, trunc, info = env.step(expert.act())
        if term or trunc:
            break
    color, depth = obs["color"], obs["depth"]
    cmap = plt.get_cmap("viridis")
    dn = np.clip((depth - 0.3) / (1.6 - 0.3), 0, 1)
    depth_rgb = (cmap(dn)[..., :3] * 255).astype(np.uint8)
    top = np.concatenate(list(color), axis=1)
    bottom = np.concatenate(list(depth_rgb), axis=1)
    sheet = np.concatenate([top, bottom], axis=0)
    fig = plt.figure(figsize=(sheet.shape[1] / 100, sheet.shape[0] / 100 + 0.35), dpi=100)
    ax = fig.add_axes([0, 0, 1, sheet.shape[0] / (sheet.shape[0] + 35)])
    ax.imshow(sheet)
    ax.axis("off")
    names = " | ".join(env.camera_names)
    fig.text(
        0.01,
        0.99,
        f"{task} ({env.obj.name}, step {env.steps}): {names}; bottom: depth 0.3-1.6 m",
        va="top",
        fontsize=8,
    )
    fig.savefig(out)
    plt.close(fig)
    env.close()
    return {"out": out, "step": env.steps, "object": env.obj.name, "progress": info["task_progress"]}


def main(argv: list[str] | None = None, extra_verbs: dict | None = None) -> int:
    """``extra_verbs``: verbs a higher package implements, ``name -> (help, add_arguments(parser),
    run(args) -> int)``; ``bora sim`` runs ``bora_trainer.collect.main``, which adds ``collect`` (the
    sim itself never imports the policy runtime or the trainer)."""
    args = _parser(extra_verbs).parse_args(argv)
    if extra_verbs and args.verb in extra_verbs:
        return int(extra_verbs[args.verb][2](args) or 0)
    if args.verb == "render":
        print(
            json.dumps(render_sheet(args.task, args.out, args.object_set, args.seed, args.size, args.steps))
        )
        return 0
    if args.verb == "glove-map":
        import yaml

        from bora_sim.operator import shadow_glove_map

        with open(args.out, "w") as fh:
            yaml.safe_dump(shadow_glove_map(), fh, sort_keys=False, default_flow_style=None, width=110)
        print(json.dumps({"out": args.out}))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
