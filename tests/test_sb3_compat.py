"""stable-baselines3's private internals that hwnas uses (``hwnas/search/sb3_compat.py``): present in the installed
version (an upgrade that changes them fails here, by name), and the check really notices a missing one."""

from __future__ import annotations

import pytest

from hwnas.search.sb3_compat import SB3CompatError, check_internals


def test_the_installed_stable_baselines3_has_every_internal_hwnas_uses():
    check_internals()


def test_a_missing_internal_is_named(monkeypatch):
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    del env.buf_infos
    with pytest.raises(SB3CompatError, match="DummyVecEnv has no 'buf_infos'"):
        check_internals(vec_env=env)

