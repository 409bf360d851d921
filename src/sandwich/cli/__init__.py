"""The `sandwich` command line: up, serve, and the supervisor behind them."""
