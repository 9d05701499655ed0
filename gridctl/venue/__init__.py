"""The local venue: a simulated exchange that speaks a real venue's wire protocol.

gridctl.venue.core is the protocol-neutral core (its docstring documents the API);
gridctl.venue.server the aiohttp server and admin API; gridctl.venue.binance the
Binance USDⓈ-M protocol. `gridctl venue` (gridctl/cli/venue_cmd.py) runs one.
"""
