"""Evaluation: scoring an episode. :mod:`core.evaluation.reward` compares the final database state
with the expected one and checks the values the agent had to report; :mod:`core.evaluation.claims`
judges the agent's report for success claims and refusals that the outcome contradicts.
"""
