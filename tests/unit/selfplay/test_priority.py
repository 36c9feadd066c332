"""Every term of the self-play priority against hand-computed cases, the starvation
floor, exact (board AND players) Elo matching, and a simulated day without starvation."""

from dataclasses import replace

import pytest

from ringrift_selfplay.domain.priority import (
    ConfigState,
    NodeFacts,
    bootstrap_boost,
    compute_terms,
    curriculum_boost,
    curriculum_weight,
    data_starvation_boost,
    elo_boost,
    elo_gap_factor,
    expected_gain,
    pick,
    plateau,
    promotion_penalty,
)
from ringrift_selfplay.domain.service import Scheduler
from ringrift_settings import PipelineSettings, SelfplaySettings, TrainingSettings

NOW = 1_000_000.0
PIPELINE = PipelineSettings()
SELFPLAY = SelfplaySettings()
TRAINING = TrainingSettings()


@pytest.mark.parametrize(
    "best, large, players, expected",
    [
        (None, False, 2, 0),
        (1200, False, 2, 0),
        (1299, False, 2, 0),
        (1300, False, 2, 1),
        (1550, False, 2, 3),
        (2500, False, 2, 3),
        (1550, True, 2, 4),
        (1550, True, 4, 5),
        (2500, True, 3, 5),
        (None, True, 3, 2),
    ],
)
def test_elo_boost(best, large, players, expected):
    assert elo_boost(best, large, players) == expected


def test_curriculum_weight_and_boost():
    assert curriculum_weight(()) == 1.0
    strong = ((0, 0.9, True),)
    assert curriculum_weight(strong) == pytest.approx(0.8) and curriculum_boost(0.8) == 0  # int(-0.8) = 0
    assert curriculum_weight(strong * 10) == pytest.approx(0.3)  # floor
    assert curriculum_boost(0.3) == -2  # int(-2.8) = -2
    weak = ((0, 0.2, False),)
    assert curriculum_weight(weak) == pytest.approx(1.3) and curriculum_boost(1.3) == 1
    assert curriculum_weight(weak * 10) == pytest.approx(2.5) and curriculum_boost(2.5) == 3  # clamp 6 -> 3
    assert curriculum_weight((*weak, (0, 0.6, True))) == pytest.approx(1.15)  # halfway back to 1


@pytest.mark.parametrize(
    "state, expected",
    [
        (dict(training_running=True, games_since_training=10), -2),  # m 0.5 -> int(-2.5)
        (dict(games_since_training=10), 5),  # m 2.0
        (dict(games_since_training=30), 2),  # m 1.5 -> int(2.5)
        (dict(games_since_training=100, last_training_completed=NOW - 600), 1),  # m 1.3 -> int(1.5)
        (dict(games_since_training=100, last_training_completed=NOW - 3600), 0),
    ],
)
def test_data_starvation_boost(state, expected):
    assert data_starvation_boost(ConfigState("square8_2p", "square8", 2, **state), NOW) == expected


@pytest.mark.parametrize(
    "games, expected",
    [(0, 100), (49, 100), (50, 75), (499, 75), (500, 50), (1999, 50), (2000, 25), (4999, 25), (5000, 0)],
)
def test_bootstrap_boost(games, expected):
    assert bootstrap_boost(games) == expected


def test_elo_gap_factor():
    assert elo_gap_factor(1000, 2000, 1000) == 3.0  # 1 + 1000/500 = 3
    assert elo_gap_factor(1750, 2000, 1000) == 1.5
    assert elo_gap_factor(2000, 2000, 1000) == 0.3
    assert elo_gap_factor(None, 2000, 1500) == 2.0  # unrated: the anchor's rating


def test_plateau_and_promotion_penalty():
    assert not plateau((1000, 1100, 1200), 3, 10)  # not enough generations
    assert plateau((1000, 1300, 1305, 1301, 1309), 3, 10)
    assert not plateau((1000, 1300, 1305, 1301, 1311), 3, 10)
    fail = lambda minutes_ago: (NOW - minutes_ago * 60, 0.4, False)  # noqa: E731
    assert promotion_penalty((), NOW) == 1.0
    assert promotion_penalty((fail(10),), NOW) == 0.7
    assert promotion_penalty((fail(40),), NOW) == 1.0  # 30 minutes passed
    assert promotion_penalty((fail(300), fail(50)), NOW) == 0.5
    assert promotion_penalty((fail(300), fail(70)), NOW) == 1.0
    assert promotion_penalty((fail(500), fail(300), fail(100)), NOW) == 0.3
    assert promotion_penalty((fail(25 * 60), fail(10)), NOW) == 0.7  # older than a day: not counted


def test_effective_priority_combines_the_terms_in_order():
    state = ConfigState(
        "square8_4p",
        "square8",
        4,
        games_total=6000,
        games_since_training=500,
        best_elo=1750,
        elo_by_generation=(1700, 1750),
    )
    node = NodeFacts("n", has_gpu=True, vram_gb=24, running_configs=frozenset({"square6_2p"}))
    (terms,) = compute_terms([state], node, NOW, SELFPLAY, TRAINING, PIPELINE)
    # base 1 + 1 (large) + 1.0 (2 extra players) = 3; elo boost 3 + 1 + 1 = 5; diversity 5;
    # gap factor 1 + 250/500 = 1.5 -> (3 + 5 + 5) * 1.5 = 19.5
    assert (terms.base, terms.elo_boost, terms.diversity_bonus, terms.bootstrap_boost) == (3.0, 5, 5, 0)
    assert terms.effective_priority == pytest.approx(19.5)
    plateaued = replace(state, elo_by_generation=(1750, 1751, 1752, 1750))
    penalised = replace(plateaued, evaluations=((NOW - 60, 0.6, False),))
    (terms,) = compute_terms([penalised], node, NOW, SELFPLAY, TRAINING, PIPELINE)
    assert terms.plateau and terms.promotion_penalty_factor == 0.7
    assert terms.effective_priority == pytest.approx(19.5 / 2 * 0.7)


def test_expected_gain_is_the_recent_rise_per_generation_after_a_prior():
    assert expected_gain((1000, 1100), 3, 100.0, 5.0) == 100.0  # too few generations: the prior
    assert expected_gain((1000, 1100, 1160, 1220, 1250), 3, 100.0, 5.0) == pytest.approx(50.0)  # (1250-1100)/3
    assert expected_gain((1000, 1300, 1290, 1295, 1299), 3, 100.0, 5.0) == 5.0  # no rise: the floor


def test_the_cost_factor_favours_the_config_that_buys_more_elo_per_cpu_second():
    def by_key(states, selfplay=SELFPLAY):
        return {t.config_key: t for t in compute_terms(states, None, NOW, selfplay, TRAINING, PIPELINE)}

    cheap = ConfigState("square6_2p", "square6", 2, games_total=10_000, cpu_seconds_per_game=1.0)
    dear = ConfigState("square8_2p", "square8", 2, games_total=10_000, cpu_seconds_per_game=4.0)
    unmeasured = ConfigState("square6_3p", "square6", 3, games_total=10_000)
    plain = by_key([cheap, dear, unmeasured], SELFPLAY.model_copy(update={"cost_aware": False}))
    terms = by_key([cheap, dear, unmeasured])
    # Equal expected gains (the prior): rates 100/1 and 100/4, geometric mean 50 -> x2 and x0.5.
    assert terms["square6_2p"].cost_factor == pytest.approx(2.0)
    assert terms["square8_2p"].cost_factor == pytest.approx(0.5)
    assert terms["square6_3p"].cost_factor == 1.0  # no measured cost: left alone
    for key, before in plain.items():
        assert before.cost_factor == 1.0
        assert terms[key].effective_priority == pytest.approx(before.effective_priority * terms[key].cost_factor)
    # A config that keeps gaining pays for its cost: 4x the CPU, 12x the gain per generation.
    learning = replace(dear, elo_by_generation=(1000, 1100, 1400, 1700, 2000))
    stalled = replace(cheap, elo_by_generation=(1000, 1100, 1120, 1140, 1175))
    terms = by_key([stalled, learning])
    assert terms["square8_2p"].expected_gain_elo == pytest.approx(300.0)
    assert terms["square6_2p"].expected_gain_elo == pytest.approx(25.0)
    assert terms["square8_2p"].cost_factor == pytest.approx(3.0**0.5)  # rates 75 and 25 per CPU second
    # Clamped: a ten-thousandfold difference moves a config only to the bounds.
    far = by_key([cheap, replace(dear, cpu_seconds_per_game=10_000.0)])
    assert far["square8_2p"].cost_factor == SELFPLAY.cost_factor_min
    assert far["square6_2p"].cost_factor == SELFPLAY.cost_factor_max


def test_filters_exclude_configs_a_node_cannot_play():
    settings = SelfplaySettings(gpu_only_configs=["square8_2p"], min_vram_gb={"square8_4p": 40})
    states = [
        ConfigState("square8_2p", "square8", 2),
        ConfigState("square8_4p", "square8", 4),
        ConfigState("square6_2p", "square6", 2),
    ]
    cpu = NodeFacts("cpu", has_gpu=False, vram_gb=0)
    terms = {t.config_key: t for t in compute_terms(states, cpu, NOW, settings, TRAINING, PIPELINE)}
    assert terms["square8_2p"].excluded_reason.startswith("no GPU")
    assert terms["square8_4p"].excluded_reason.startswith("VRAM")
    assert terms["square6_2p"].excluded_reason == ""
    for seed in range(1, 50):
        assert pick(list(terms.values()), seed, settings).config_key == "square6_2p"


def test_starvation_floor_serves_starved_configs_first_and_the_soft_floor_sometimes():
    states = [
        ConfigState("square8_2p", "square8", 2, games_total=10_000, games_since_training=100),
        ConfigState("square6_2p", "square6", 2, games_total=100, games_since_training=100),
    ]
    terms = compute_terms(states, None, NOW, SELFPLAY, TRAINING, PIPELINE)
    assert all(pick(terms, seed, SELFPLAY).config_key == "square6_2p" for seed in range(1, 200))
    soft = [replace(states[0], games_total=20_000), replace(states[1], games_total=2500)]
    terms = compute_terms(soft, None, NOW, SelfplaySettings(starvation_soft_probability=0.4), TRAINING, PIPELINE)
    picks = [pick(terms, seed, SELFPLAY).config_key for seed in range(1, 2001)]
    share = picks.count("square6_2p") / len(picks)
    # 0.4 from the soft floor plus 0.6 times its weighted share without it.
    weights = {t.config_key: t.effective_priority for t in terms}
    expected = 0.4 + 0.6 * weights["square6_2p"] / sum(weights.values())
    assert abs(share - expected) < 0.04


def test_round_robin_gives_every_eligible_config_an_equal_share_whatever_its_terms():
    settings = SelfplaySettings(allocation="round_robin", gpu_only_configs=["square8_4p"])
    states = [
        ConfigState("square8_2p", "square8", 2, games_total=10_000, games_since_training=100),
        ConfigState("square6_2p", "square6", 2, games_total=100),  # starved: the floor would serve it first
        ConfigState("square6_3p", "square6", 3, games_total=5000, best_elo=1900.0),
        ConfigState("square8_4p", "square8", 4),
    ]
    cpu = NodeFacts("cpu", has_gpu=False, vram_gb=0)
    terms = compute_terms(states, cpu, NOW, settings, TRAINING, PIPELINE)
    assert len({t.effective_priority for t in terms if not t.excluded_reason}) > 1  # the terms differ
    picks = [pick(terms, seed, settings).config_key for seed in range(1, 3001)]
    assert "square8_4p" not in picks  # still only what the node may play
    for key in ("square8_2p", "square6_2p", "square6_3p"):
        assert abs(picks.count(key) / len(picks) - 1 / 3) < 0.03, key
    assert {t.config_key: round(t.probability, 3) for t in terms} == {
        "square8_2p": 0.333,
        "square6_2p": 0.333,
        "square6_3p": 0.333,
        "square8_4p": 0.0,
    }
    priority = [pick(terms, seed, SELFPLAY).config_key for seed in range(1, 200)]
    assert set(priority) == {"square6_2p"}  # the default allocation: the starvation floor


def test_a_pick_replays_from_its_seed():
    states = [ConfigState(k, k.split("_")[0], int(k[-2]), games_total=4000 + i) for i, k in enumerate(PIPELINE.configs)]
    terms = compute_terms(states, None, NOW, SELFPLAY, TRAINING, PIPELINE)
    assert [pick(terms, s, SELFPLAY).config_key for s in range(1, 40)] == [
        pick(terms, s, SELFPLAY).config_key for s in range(1, 40)
    ]
    assert len({pick(terms, s, SELFPLAY).config_key for s in range(1, 200)}) == len(PIPELINE.configs)


class FakeState:
    def __init__(self, ratings, generations):
        self._ratings, self._generations = ratings, generations

    async def config_stats(self):
        return {}

    async def ratings(self):
        return self._ratings

    async def generations(self):
        return self._generations

    async def evaluations(self):
        return {}

    async def running_configs(self, node_id):
        return set()


async def test_elo_boost_counts_only_models_of_exactly_this_config():
    """The old code matched board OR players: a strong square8_4p model lifted square8_2p."""
    ratings = {"square8_4p": {"m4": 1900, "random": 1000}, "square6_2p": {"m6": 1650}, "square8_2p": {"random": 1000}}
    generations = {"square8_4p": {"m4": 3}, "square6_2p": {"m6": 2}}
    pipeline = PipelineSettings(configs=["square8_2p", "square8_4p", "square6_2p"])
    scheduler = Scheduler(pipeline, SELFPLAY, TRAINING, FakeState(ratings, generations), lambda n: None, lambda: NOW)
    assert await scheduler.elo_boost("square8_2p") == (1, None)  # large board only; the baseline is not a model
    assert await scheduler.elo_boost("square8_4p") == (5, 1900)
    assert await scheduler.elo_boost("square6_2p") == (3, 1650)  # min(3, 450 // 100)


def test_a_simulated_day_grows_every_config():
    """24 h of 1-minute cycles on 6 node slots: every pick plays 50 games; a config
    trains (games_since_training reset, running for 20 min) after 1000 new games; one
    config is far ahead in rating. Every config's game count grows in every 4-hour span."""
    keys = PIPELINE.configs
    states = {k: ConfigState(k, k.split("_")[0], int(k[-2])) for k in keys}
    states["square6_2p"] = replace(states["square6_2p"], best_elo=2100, games_total=50_000)
    training_ends: dict[str, float] = {}
    history: dict[str, list[int]] = {k: [] for k in keys}
    seed = 1
    for minute in range(24 * 60):
        now = minute * 60.0
        for k, end in list(training_ends.items()):
            if now >= end:
                states[k] = replace(states[k], training_running=False, last_training_completed=now)
                del training_ends[k]
        for slot in range(6):
            node = NodeFacts(f"n{slot}", True, 24, frozenset())
            terms = compute_terms(list(states.values()), node, now, SELFPLAY, TRAINING, PIPELINE)
            chosen = pick(terms, seed, SELFPLAY).config_key
            seed += 1
            s = states[chosen]
            states[chosen] = replace(
                s, games_total=s.games_total + 50, games_since_training=s.games_since_training + 50
            )
        for k, s in states.items():
            if s.games_since_training >= 1000 and not s.training_running:
                states[k] = replace(s, games_since_training=0, training_running=True)
                training_ends[k] = now + 1200
        if minute % 240 == 239:
            for k in keys:
                history[k].append(states[k].games_total)
    for k in keys:
        spans = [b - a for a, b in zip([0 if k != "square6_2p" else 50_000] + history[k], history[k], strict=False)]
        assert all(gain > 0 for gain in spans), (k, spans)
