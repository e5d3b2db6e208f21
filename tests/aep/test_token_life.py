"""How long a freshly minted IMS token is used, from the ``expires_in`` IMS sent."""

from __future__ import annotations

import pytest

from aep_provider.aep.ims import FALLBACK_EXPIRES_IN, token_life


@pytest.mark.parametrize(("expires_in", "life"), [(86399, 86399.0), ("3600", 3600.0), (0.5, 0.5)])
def test_a_positive_number_of_seconds_is_taken_as_is(expires_in, life):
    assert token_life(expires_in) == life


@pytest.mark.parametrize("expires_in", [None, "soon", [1], 0, -5, "nan", "inf", float("-inf")])
def test_absent_or_unusable_lives_fall_back_instead_of_minting_per_request(expires_in):
    assert token_life(expires_in) == FALLBACK_EXPIRES_IN
