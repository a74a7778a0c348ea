"""`make test`'s lanes: every tier runs exactly once, in its lane's order."""

from market_mlops.dev.tiers import LANES, TIERS, lanes_of


def test_every_tier_is_in_exactly_one_lane():
    placed = [name for lane in LANES for name in lane]
    assert sorted(placed) == sorted(TIERS)


def test_only_and_serial_keep_the_order():
    assert lanes_of(["browser", "scale", "default"], serial=False) == [["scale", "browser"], ["default"]]
    assert lanes_of(["browser", "scale", "default"], serial=True) == [["default", "scale", "browser"]]
    assert lanes_of(["cluster"], serial=False) == [["cluster"]]
