"""Plots drawn from aperflow's output tables (matplotlib, no notebook needed).

One module per stage (``field``, ``standard``, ``timeseries``, ``forced``) sharing the
style and the atomic writer of :mod:`aperflow.plots.style`.
"""
