"""Agents and users for episodes: the built-in agents (oracle, random, guesser, LLM) and the episode
loop (:mod:`core.agents.agents`), and the scripted user that plays the customer and answers the
agent's questions (:mod:`core.agents.user`).
"""
