"""Human-in-the-loop learning: a simulated operator (`operator.py`) and the methods that learn from
its interventions (HIL-SERL, RLIF, HG-DAgger)."""
