"""The integer core's guard on thresholds: every condition that depends on the price or the
mark (liquidation, the margin-ratio levels, price stops, money stops), as a band the walk
must stay strictly inside, or checked at once on a fixed mark; too close to tell falls back."""

from __future__ import annotations

import math

from gridctl.backtest.fastbase import REL, Fallback


def update(self) -> None:
    """The prices (dlo, dhi) the walk must stay strictly between, from every threshold
    that depends on the price; thresholds on a fixed mark are checked here."""
    st = self.st
    dlo, dhi = st.plo, st.phi
    Uf, net = st.Uf, self.net
    mark = self.fmark
    cash_f = Uf * self.cash
    money = self.fund_q * st.Qf - self.fee_q * st.Qf
    checks = []  # (a, b): a + b·mark must stay > 0
    if net:
        kc = self.kacct - cash_f + money  # equity = kc + Uf·net·mark
        mm = st.mmr * Uf * abs(net)  # maintenance = mm·mark
        checks.append((kc, Uf * net - mm))  # liquidation: equity - maintenance
        if st.margin_ratio is not None:
            warn, reduce, close = st.margin_ratio
            lvl = self.margin_level
            checks.append((kc, Uf * net))  # equity > 0
            upper = (warn, reduce, close)[lvl]
            checks.append((upper * kc, upper * Uf * net - mm))  # ratio < upper
            if lvl:
                lower = (warn, reduce)[lvl - 1]
                checks.append((-lower * kc, mm - lower * Uf * net))  # ratio >= lower
    elif st.margin_ratio is not None and self.margin_level:
        raise Fallback
    if st.max_loss is not None or st.take_profit is not None or st.max_level_loss is not None:
        kl = self.kled - cash_f + money  # total PnL = kl + Uf·lnet·mark
        b = Uf * self.lnet
        if st.max_loss is not None:
            checks.append((kl + st.max_loss, b))
        if st.take_profit is not None:
            checks.append((st.take_profit - kl, -b))
        if st.max_level_loss is not None:
            for i, q in enumerate(self.held):
                if q:
                    s = self.lsign[i]
                    checks.append((st.max_level_loss - s * Uf * self.lcost[i], s * Uf * q))
    for a, b in checks:
        if mark is not None or b == 0:
            m = mark if mark is not None else self.price
            v = a + b * m
            if v <= REL * (abs(a) + abs(b * m)) + 1e-12:
                raise Fallback
            continue
        r = -a / b
        pad = 2 + abs(r) * REL
        if b > 0:
            dlo = max(dlo, math.floor(r + pad))
        else:
            dhi = min(dhi, math.ceil(r - pad))
    self.dlo, self.dhi = dlo, dhi
    if not dlo < self.price < dhi:
        raise Fallback
