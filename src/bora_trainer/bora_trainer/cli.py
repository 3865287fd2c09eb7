"""The ``bora`` command: one entry point, subcommands owned by the modules that implement them.

``bora <command> [<verb>] ...`` imports the owning module lazily (start-up stays fast and a
command's heavy imports are paid only when it runs) and calls its ``main(argv) -> int``.

A command that *is* a ROS node (:data:`NODE_COMMANDS`, e.g. ``bora record``) is not imported: this
process is replaced by ``python -m <node module> <args>`` (:func:`exec_node`), as ``ros2 run`` would
start it. Library code (this CLI included) so never imports a node, rclpy or ``bora_msgs``
(test_architecture.py), and the node keeps this process's PID, so SIGINT/SIGTERM reach it directly.

Every other command unwinds on SIGTERM as on Ctrl-C (:func:`unwind_on_sigterm`): Python's default for SIGTERM
ends the process without running ``finally`` blocks, so a killed ``bora train online --env ros`` left its
``bora up`` graph running (found in review, 2026-12-07). A stopped command prints one line and exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import NoReturn

from bora_trainer.algorithms import registry  # names only: imports nothing heavy

# command -> (module, help). Modules expose main(argv: list[str]) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("bora_trainer.collect", "simulated robot: `collect` scripted demonstrations, `render` a contact sheet, "
                                    "`glove-map`"),
    "train": ("bora_trainer.train", f"`offline` ({', '.join(registry.offline_names())}) "
                                    f"or `online` ({', '.join(registry.online_names())}) training"),
    "eval": ("bora_trainer.evaluate", "evaluate a run on a simulated task and object set; `eval critic`: "
                                      "the critic's outcome AUROC and calibration on eval results"),
    "select": ("bora_trainer.select", "choose an offline run's checkpoint by rollouts on tuning seeds and deploy it "
                                      "as RUN/policy"),
    "report": ("bora_trainer.report", "Markdown tables (paper Tables 1-2 form) and plots from eval results; "
                                      "`report evidence`: paired differences, seeds, learning curve, AUROC"),
    "bag": ("bora_trainer.data.bag_cli", "`convert` rosbag2 recordings into episodes and transitions, `info`"),
    "record": ("bora_trainer.nodes.recorder_node", "record the BORA topics into an MCAP rosbag2 (no ros2 CLI needed)"),
    "dataset": ("bora_trainer.data.lerobot", "`export` / `import` LeRobotDataset v3"),
    "up": ("bora_trainer.up", "start the node graph (--sim: with the simulated robot) under a supervisor"),
    "demo": ("bora_trainer.demo.cli", "the whole pipeline on the simulated robot (what `make demo` runs)"),
    "help": ("bora_policy.runtime.help_calibration", "`calibrate` the critic's help-request threshold per task "
                                                      "from recorded episodes (issue 19)"),
    "viz": ("bora_trainer.viz.cli", "a recording, an episode dataset or the live graph in the Rerun viewer "
                                    "(.rrd file or web viewer on 127.0.0.1)"),
}

# commands that run a ROS node: executed as their own process (exec_node), never imported here
NODE_COMMANDS = frozenset({"record"})


def exec_node(module: str, argv: list[str]) -> NoReturn:
    """Replace this process with ``python -m module *argv`` (same PID and signals; nothing returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *argv])


def _interrupt(signum, _frame) -> None:
    # one is enough: a SIGTERM after the first interrupt (a group kill, then the runner stopping its jobs; a Ctrl-C,
    # then the runner's SIGTERM) would abort the cleanup the first started; SIGKILL still ends a command that hangs
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name) if signum == signal.SIGTERM else KeyboardInterrupt()


def unwind_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt("SIGTERM") in the main thread, SIGINT a plain one (as Python's default, unless
    SIGINT is ignored: a background job); after either, SIGTERM is ignored, so the cleanup code runs once."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora",
        description="BORA: offline-to-online RL post-training of dexterous VLA policies (ROS 2 + PyTorch).",
        epilog="Run `bora <command> --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_name = COMMANDS[name][0]
    if name == "eval" and rest[:1] == ["critic"]:  # `bora eval critic`: AUROC + calibration of eval results
        module_name, rest = "bora_trainer.eval_critic", rest[1:]
    if name == "report" and rest[:1] == ["evidence"]:  # `bora report evidence`: the issue-14 evidence report
        module_name, rest = "bora_trainer.evidence", rest[1:]
    if name in NODE_COMMANDS:
        exec_node(module_name, rest)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            print(f"bora {name}: not available in this version of the stack ({module_name} is missing)",
                  file=sys.stderr)
            return 3
        raise
    unwind_on_sigterm()
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt as e:
        print(f"bora {name}: stopped ({e.args[0] if e.args else 'SIGINT'})", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
