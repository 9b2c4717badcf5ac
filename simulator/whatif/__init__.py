"""``kvscale-sim``: compare scaling policies on the same trace, in virtual time."""
