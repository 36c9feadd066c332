"""The reference model learns: trained on games of generation 0, it beats the random
baseline in at least 85 % of 2-player games and the heuristic more often than
generation 0 does. Also the model file, training files and job entry points."""

import json

import numpy as np
import pytest

from ringrift_reference import jobs
from ringrift_reference.data import read_games, samples
from ringrift_reference.model import Model, train
from ringrift_reference.players import HeuristicPlayer, ModelPlayer, RandomPlayer, play_game


def win_rate(config_key, candidate, opponent, games, seed):
    wins = 0.0
    for game in range(games):
        seat = game % 2
        seats = [opponent, opponent]
        seats[seat] = candidate
        record = play_game(config_key, seats, seed + game)
        if seat in record.winners:
            wins += 1.0 if len(record.winners) == 1 else 0.5
    return wins / games


@pytest.mark.parametrize("config_key", ["square6_2p", "square8_2p"])
def test_a_trained_model_beats_random_and_the_heuristic_better_than_generation_zero(config_key):
    random_player = RandomPlayer()
    records = [play_game(config_key, [random_player, random_player], seed) for seed in range(300)]
    features, targets = samples(records)
    model = train(Model.initial(config_key), features, targets, epochs=10, seed=1)
    trained = ModelPlayer(model)
    generation0 = ModelPlayer(Model.initial(config_key))
    assert win_rate(config_key, trained, RandomPlayer(), 100, 10_000) >= 0.85
    assert win_rate(config_key, trained, HeuristicPlayer(), 60, 20_000) > win_rate(
        config_key, generation0, HeuristicPlayer(), 60, 20_000
    )


def test_training_is_deterministic_and_warm_starts_from_the_parent(tmp_path):
    records = [play_game("square6_2p", [RandomPlayer(), RandomPlayer()], s) for s in range(40)]
    x, y = samples(records)
    a = train(Model.initial("square6_2p"), x, y, epochs=3, seed=5)
    b = train(Model.initial("square6_2p"), x, y, epochs=3, seed=5)
    assert np.array_equal(a.weights, b.weights) and np.any(a.weights != 0)
    path = tmp_path / "m.npz"
    sha = a.save(path)
    loaded = Model.load(path)
    assert np.array_equal(loaded.weights, a.weights) and loaded.config_key == "square6_2p"
    assert len(sha) == 64 and loaded.meta["weights_sha256"] == a.weights_sha256()


def test_the_same_data_trains_nearly_the_same_model_whatever_the_seed():
    """A decaying step and an averaged last epoch: the trained model depends on the data,
    not on the order of its mini-batches (here two seeds end 3 % apart; with the constant
    step this replaced, 7 %, and a generation-2 model could play worse than generation 1
    depending only on the seed)."""
    records = [play_game("square8_2p", [RandomPlayer(), RandomPlayer()], s) for s in range(150)]
    x, y = samples(records)
    a = train(Model.initial("square8_2p"), x, y, epochs=10, seed=1).weights
    b = train(Model.initial("square8_2p"), x, y, epochs=10, seed=2).weights
    assert np.linalg.norm(a - b) < 0.05 * np.linalg.norm(a)


def run(tmp_path, *argv):
    return jobs.main([*argv[:1], "--data-dir", str(tmp_path), *argv[1:]])


def result(tmp_path, name):
    return json.loads((tmp_path / "jobs" / name / "result.json").read_text())


def test_the_job_entry_points_run_the_pipeline_and_resume_training(tmp_path):
    assert (
        run(
            tmp_path,
            "selfplay",
            "--work-dir",
            f"{tmp_path}/jobs/s",
            "--job-id",
            "s1",
            "--config-key",
            "square6_2p",
            "--games",
            "30",
            "--seed",
            "-1",
        )
        == 0
    )
    played = result(tmp_path, "s")
    assert played["games"] == 30 and played["path"] == "games/square6_2p/s1.db"
    assert len(read_games(tmp_path / played["path"], "square6_2p")) == 30
    assert (
        run(
            tmp_path,
            "export",
            "--work-dir",
            f"{tmp_path}/jobs/e",
            "--config-key",
            "square6_2p",
            "--window",
            "20",
            "--output",
            "training/square6_2p/t.npz",
        )
        == 0
    )
    assert result(tmp_path, "e")["games"] == 20
    # A checkpoint from an interrupted attempt is resumed from its epoch.
    x, y = samples(read_games(tmp_path / played["path"], "square6_2p"))
    partial = train(Model.initial("square6_2p"), x, y, epochs=2, seed=0)
    partial.meta["epoch"] = 2
    partial.save(tmp_path / "checkpoints/square6_2p/run.npz")
    assert (
        run(
            tmp_path,
            "train",
            "--work-dir",
            f"{tmp_path}/jobs/t",
            "--config-key",
            "square6_2p",
            "--training-file",
            "training/square6_2p/t.npz",
            "--output",
            "models/square6_2p/g1.npz",
            "--epochs",
            "4",
            "--checkpoint",
            "checkpoints/square6_2p/run.npz",
        )
        == 0
    )
    trained = result(tmp_path, "t")
    assert trained["resumed_from_epoch"] == 2 and trained["parent"] == "gen0"
    assert not (tmp_path / "checkpoints/square6_2p/run.npz").exists()
    meta = json.loads((tmp_path / "models/square6_2p/g1.npz.json").read_text())
    assert meta["sha256"] == trained["sha256"] and meta["training_window"]["games"] == 20
    assert (
        run(
            tmp_path,
            "gauntlet",
            "--work-dir",
            f"{tmp_path}/jobs/g",
            "--config-key",
            "square6_2p",
            "--candidate",
            "models/square6_2p/g1.npz",
            "--incumbent",
            "models/square6_2p/g1.npz",
            "--incumbent-name",
            "self",
            "--games",
            "6",
        )
        == 0
    )
    outcome = result(tmp_path, "g")["opponents"]
    assert set(outcome) == {"self", "random", "heuristic"}
    assert all(o["wins"] + o["losses"] + o["draws"] == 6 for o in outcome.values())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["selfplay", "--job-id", "x", "--config-key", "square6_2p", "--model", "../../etc/passwd"], "inside the data"),
        (["selfplay", "--job-id", "x", "--config-key", "square6_2p", "--model", "/etc/passwd"], "inside the data"),
        (["train", "--config-key", "square6_2p", "--training-file", "t.npz", "--output", "m.npz"], "not on this node"),
        (["selfplay", "--job-id", "x", "--config-key", "hexagonal_2p"], "unsupported board"),
        (["export", "--config-key", "square6_2p", "--output", "t.npz"], "no games"),
        (
            ["gauntlet", "--config-key", "square6_2p", "--candidate", "", "--baselines", "random,chess"],
            "unknown baseline",
        ),
    ],
)
def test_bad_job_arguments_fail_with_one_clear_line(tmp_path, capsys, argv, message):
    assert run(tmp_path, argv[0], "--work-dir", f"{tmp_path}/jobs/bad", *argv[1:]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "jobs" / "bad" / "result.json").exists()


def test_selfplay_plays_with_the_newest_local_model_while_the_best_is_on_its_way(tmp_path, capsys):
    Model.initial("square6_2p").save(tmp_path / "models/square6_2p/old.npz")
    assert (
        run(
            tmp_path,
            "selfplay",
            "--work-dir",
            f"{tmp_path}/jobs/s",
            "--job-id",
            "s",
            "--config-key",
            "square6_2p",
            "--games",
            "2",
            "--model",
            "models/square6_2p/new.npz",
        )
        == 0
    )
    assert result(tmp_path, "s")["model"] == "models/square6_2p/old.npz"
    assert "is not on this node yet" in capsys.readouterr().err


def test_a_symlink_out_of_the_data_directory_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "escape").symlink_to(outside)
    with pytest.raises(jobs.JobError):
        jobs.inside(data, "models/escape/x.npz", "model")


def test_export_skips_and_counts_corrupt_games_and_names_the_jobs_of_its_games(tmp_path):
    from dataclasses import replace

    from ringrift_reference.data import check_game, write_games

    random_player = RandomPlayer()
    games = [play_game("square6_2p", [random_player, random_player], seed) for seed in range(6)]
    folder = tmp_path / "games/square6_2p"
    write_games(folder / "job-a.db", games[:3], "gen0", {})
    illegal = replace(games[3], moves=[games[3].moves[0]] * 2 + games[3].moves[2:])  # one cell played twice
    lying = replace(games[4], winners=[1 - games[4].winners[0]] if len(games[4].winners) == 1 else [0])
    short = replace(games[5], moves=games[5].moves[:-3])
    assert all(check_game(g) for g in (illegal, lying, short)) and not check_game(games[0])
    write_games(folder / "job-b.db", [games[3], illegal, lying, short], "gen0", {})
    (folder / "job-c.db").write_bytes(b"not a database at all" * 100)
    assert run(tmp_path, "export", "--work-dir", f"{tmp_path}/jobs/e", "--config-key", "square6_2p",
               "--output", "training/square6_2p/t.npz") == 0  # fmt: skip
    exported = result(tmp_path, "e")
    assert exported["games"] == 4 and exported["skipped_games"] == 3 and exported["skipped_files"] == ["job-c.db"]
    assert {s["job_id"]: (s["games"], s["skipped"]) for s in exported["sources"]} == {"job-a": (3, 0), "job-b": (1, 3)}


@pytest.mark.parametrize("config_key", ["square6_2p", "square8_2p"])
def test_the_alpha_beta_yardstick_is_stronger_than_the_heuristic(config_key):
    from ringrift_reference.players import AlphaBetaPlayer, baseline

    assert isinstance(baseline("alphabeta"), AlphaBetaPlayer)
    yardstick, heuristic = AlphaBetaPlayer(), HeuristicPlayer()
    wins = 0.0
    for game in range(40):  # openings of four random moves, each game from alternating seats
        seat = game % 2
        seats = [heuristic, heuristic]
        seats[seat] = yardstick
        record = play_game(config_key, seats, 30_000 + game, random_opening=4)
        if seat in record.winners:
            wins += 1.0 if len(record.winners) == 1 else 0.5
    assert wins / 40 >= 0.65
