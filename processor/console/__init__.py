"""``zenoti-events console``: an operator's web console over the parking lots (issue 16)."""
