"""The `bora` command lists its subcommands and dispatches to the owning module."""

from __future__ import annotations

import subprocess
import sys

from bora_trainer.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("sim", "train", "eval", "report", "bag", "record", "dataset", "up", "demo"):
        assert name in COMMANDS and f"    {name}" in out


def test_unknown_command_is_an_error():
    proc = subprocess.run([sys.executable, "-m", "bora_trainer.cli", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr


def test_train_dispatch_help(capsys):
    assert main(["train", "--help"]) == 0
    assert "offline" in capsys.readouterr().out


def test_record_runs_the_recorder_node_as_its_own_process():
    """`bora record` execs `python -m bora_trainer.nodes.recorder_node` (the CLI never imports a node):
    same output as the node run directly, and the topics of config/record_topics.yaml's default groups."""
    via_cli = subprocess.run([sys.executable, "-m", "bora_trainer.cli", "record", "--print-topics"],
                             capture_output=True, text=True, timeout=60)
    direct = subprocess.run([sys.executable, "-m", "bora_trainer.nodes.recorder_node", "--print-topics"],
                            capture_output=True, text=True, timeout=60)
    assert via_cli.returncode == 0 == direct.returncode, via_cli.stderr + direct.stderr
    assert via_cli.stdout == direct.stdout
    assert "/bora/executed_command" in via_cli.stdout.split()
