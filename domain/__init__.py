"""Pure rules of phigate: vocabulary, validation, state machines, deadlines.

Nothing in this package performs I/O or imports a framework (a test enforces it).
"""
