"""`risk.exchange_stop` in `gridctl validate`: a stop order rests at the stop-loss price, so
without one it is refused naming the field; a non-boolean is refused; a venue that takes no
stop-market orders through gridctl is refused; with a stop-loss it validates."""

from __future__ import annotations

from tests.test_config_errors import BASE, LIVE, problems, validate


def test_exchange_stop_without_a_stop_loss_is_refused(tmp_path):
    text = BASE + "    risk:\n      exchange_stop: true\n"
    assert problems(tmp_path, text) == [
        "strategies.sol.risk.exchange_stop (line 19): needs risk.stop_loss_price or risk.stop_loss_pct: the stop "
        "order rests at the stop-loss price"]


def test_exchange_stop_must_be_true_or_false(tmp_path):
    text = BASE + "    risk:\n      stop_loss_pct: 2\n      exchange_stop: yes please\n"
    assert problems(tmp_path, text) == [
        "strategies.sol.risk.exchange_stop (line 20): must be true or false, got 'yes please'"]


def test_exchange_stop_with_a_stop_loss_validates(tmp_path):
    for risk in ("stop_loss_pct: 2", "stop_loss_price: 150"):
        result, _ = validate(tmp_path, BASE + f"    risk:\n      {risk}\n      exchange_stop: true\n")
        assert result.exit_code == 0, result.output


def test_exchange_stop_on_a_venue_without_stop_orders_is_refused(tmp_path):
    text = LIVE.replace("exchange: binanceusdm", "exchange: okx") + \
        "    risk:\n      stop_loss_pct: 2\n      exchange_stop: true\n"
    assert problems(tmp_path, text, env={"GX_TEST_KEY": "k", "GX_TEST_SECRET": "s"}) == [
        "strategies.sol.risk.exchange_stop (line 18): is not supported on okx (binanceusdm and backpack take "
        "stop-market orders)"]
