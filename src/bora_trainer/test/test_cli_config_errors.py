"""A bad config field or value reaches the user of `bora train offline` / `bora train online` as one line
naming the field and what was expected, not as a traceback; nothing is written."""

from __future__ import annotations

import pytest

from bora_trainer.data.chunks import write_synthetic_dataset


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("cfgerr") / "ds", n_episodes=1, T=6, image_size=(8, 8))


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("nosuchkey: 1\n", "bora train offline: OfflineConfig: unknown field(s) ['nosuchkey']"),
        ("policy_ema: 1.5\n", "bora train offline: OfflineConfig.policy_ema must be in [0, 1) (0 = off), got 1.5"),
    ],
)
def test_offline_config_errors_are_one_line(ds, tmp_path, yaml_text, expected):
    from bora_trainer.offline.cli import main

    (tmp_path / "c.yaml").write_text(yaml_text)
    with pytest.raises(SystemExit) as e:
        main(["--data", str(ds), "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)
    with pytest.raises(SystemExit, match=r"^bora train offline: OfflineConfig.total_updates must be >= 1, got -3$"):
        main(["--data", str(ds), "--updates", "-3", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
    bad_threads = r"^bora train offline: --threads must be >= 0 \(0 = torch's default\), got -1$"
    with pytest.raises(SystemExit, match=bad_threads):
        main(["--data", str(ds), "--threads", "-1", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_online_config_errors_are_one_line(ds, tmp_path, capsys):
    from bora_trainer.online.cli import main

    (tmp_path / "c.yaml").write_text("online:\n  batch_size: 3\n")
    rc = main(["--config", str(tmp_path / "c.yaml"), "--offline-run", str(tmp_path / "r"), "--offline-data", str(ds),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err == "bora train online: OnlineConfig.batch_size must be even (1:1 offline/online), got 3\n"
    assert not (tmp_path / "o").exists()
