"""Minimum necessary: what an operation touches, the decision over it, the rules for
every input value, and the runtime guard where PHI is used."""
